"""Unit tests for trovestack.testenv.tempest_runner (no tempest run)."""

import datetime
import io
import json
import re

import pytest
import subunit

from trovestack.commands import shell
from trovestack.testenv import tempest_runner

GOOD = ('[identity]\nuri_v3 = http://127.0.0.1:5000/v3\n'
        '[service_available]\ntrove = True\n'
        '[database]\nenabled_datastores = mysql\n')


def test_run_arguments_pass_the_selection_through(tmp_path):
    selection = tempest_runner.Selection(regex='^x', exclude_regex='slow',
                                         concurrency=3)
    argv = tempest_runner.run_arguments('tempest', tmp_path, selection)
    assert argv == ['tempest', 'run', '--config-file',
                    str(tmp_path / 'etc' / 'tempest.conf'), '--regex', '^x',
                    '--exclude-regex', 'slow', '--concurrency', '3']


def test_serial_and_list_tests():
    serial = tempest_runner.run_arguments(
        't', '/w', tempest_runner.Selection(regex='r', serial=True))
    assert serial[-1] == '--serial'
    listing = tempest_runner.run_arguments(
        't', '/w', tempest_runner.Selection(regex='r', list_tests=True,
                                            serial=True))
    assert listing[-1] == '--list-tests' and '--serial' not in listing


@pytest.mark.parametrize('text, missing', [
    ('', '[service_available] trove'),
    (GOOD.replace('uri_v3', 'uri'), '[identity] uri_v3'),
    (GOOD.replace('enabled_datastores', 'x'), 'enabled_datastores'),
    (GOOD.replace('trove = True', 'trove = False'), 'not True'),
])
def test_check_config_names_what_is_missing(tmp_path, text, missing):
    conf = tmp_path / 'tempest.conf'
    conf.write_text(text)
    with pytest.raises(tempest_runner.TempestError, match=missing.replace(
            '[', r'\[').replace(']', r'\]')):
        tempest_runner.check_config(conf)


def test_prepare_workspace_refuses_a_foreign_directory(tmp_path):
    conf = tmp_path / 'tempest.conf'
    conf.write_text(GOOD)
    (tmp_path / 'ws').mkdir()
    (tmp_path / 'ws' / 'mine.txt').write_text('keep me')
    with pytest.raises(tempest_runner.TempestError, match='not a tempest'):
        tempest_runner.prepare_workspace(tmp_path / 'ws', conf,
                                         tempest='tempest')


def test_prepare_workspace_copies_config_with_private_mode(tmp_path):
    conf = tmp_path / 'tempest.conf'
    conf.write_text(GOOD)
    workspace = tmp_path / 'ws'
    (workspace / 'etc').mkdir(parents=True)
    (workspace / '.stestr.conf').write_text('[DEFAULT]\n')
    target = tempest_runner.prepare_workspace(workspace, conf,
                                              tempest='tempest')
    text = target.read_text()
    assert 'enabled_datastores = mysql' in text
    assert f'lock_path = {workspace}/tempest_lock' in text
    assert target.stat().st_mode & 0o777 == 0o600


def test_run_arguments_inside_a_namespace():
    argv = tempest_runner.run_arguments(
        't', '/w', tempest_runner.Selection(regex='r'), netns='ns-1')
    assert argv[:5] == ['ip', 'netns', 'exec', 'ns-1', 't']


def _subunit(events):
    """A subunit v2 stream of (test id, status, seconds) events."""
    stream = io.BytesIO()
    out = subunit.StreamResultToBytes(stream)
    start = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
    for test_id, status, seconds in events:
        out.status(test_id=test_id, test_status='inprogress',
                   timestamp=start)
        out.status(test_id=test_id, test_status=status,
                   timestamp=start + datetime.timedelta(seconds=seconds))
    stream.seek(0)
    return stream


def test_results_name_the_test_its_datastore_and_outcome(tmp_path):
    scenario = 'trove_tempest_plugin.tests.scenario.'
    stream = _subunit([
        (scenario + 'test_instance_basic.TestInstanceBasicMariaDB.'
         'test_configuration[id-1]', 'success', 29.56),
        ('setUpClass (' + scenario + 'test_backup.TestBackupPostgreSQL)',
         'fail', 0.5),
        ('setUpClass (' + scenario + 'test_instance_basic.'
         'TestInstanceBasicMySQL)', 'skip', 0.0),
        ('tempest.api.identity.v3.test_api_discovery.'
         'TestApiDiscovery.test_list_api_versions[id-2]', 'success', 1.0),
    ])
    results = tempest_runner.parse_results(stream)
    assert [(r.test, r.datastore, r.result, r.seconds) for r in results] == [
        ('test_instance_basic.TestInstanceBasicMariaDB.test_configuration',
         'mariadb', 'success', 29.6),
        ('test_backup.TestBackupPostgreSQL.setUpClass', 'postgresql',
         'fail', 0.5),
        ('test_instance_basic.TestInstanceBasicMySQL.setUpClass', 'mysql',
         'skip', 0.0),
        ('tempest.api.identity.v3.test_api_discovery.TestApiDiscovery.'
         'test_list_api_versions', '', 'success', 1.0),
    ]
    path = tmp_path / 'results.json'
    tempest_runner.write_results(path, results)
    assert json.loads(path.read_text())[1] == {
        'test': 'test_backup.TestBackupPostgreSQL.setUpClass',
        'datastore': 'postgresql', 'result': 'fail', 'seconds': 0.5}


@pytest.mark.parametrize('profile, module, other', [
    ('basic', 'test_instance_basic', 'test_backup'),
    ('backup', 'test_backup', 'test_instance_basic'),
    ('actions', 'test_instance_actions', 'test_instance_update_access'),
    ('full', 'test_replication', 'test_cinder_backup'),
])
def test_profiles_select_scenario_modules(profile, module, other):
    regex = tempest_runner.PROFILES[profile]
    scenario = 'trove_tempest_plugin.tests.scenario.'
    assert re.match(regex, f'{scenario}{module}.TestX.test_y')
    assert not re.match(regex, f'{scenario}{other}.TestX.test_y')


def test_a_profile_narrowed_to_datastores_keeps_only_their_classes():
    regex = tempest_runner.profile_regex('full', ['mariadb', 'postgresql'])
    scenario = 'trove_tempest_plugin.tests.scenario.'
    for kept in ('test_backup.TestBackupMariaDB.test_backup_full[id-1]',
                 'test_replication.TestReplicationPostgreSQL.test_x'):
        assert re.match(regex, scenario + kept)
    for left in ('test_backup.TestBackupMySQL.test_backup_full',
                 'test_cinder_backup.TestCinderBackupMariaDB.test_x'):
        assert not re.match(regex, scenario + left)
    assert tempest_runner.profile_regex('basic') == \
        tempest_runner.PROFILES['basic']


def test_datastore_without_a_profile_is_refused(tmp_path, capsys):
    conf = tmp_path / 'tempest.conf'
    conf.write_text('')
    status = shell.main(['gate-tests', '--tempest-conf', str(conf),
                         '--datastore', 'mariadb', '--dry-run'])
    assert status != 0
    assert '--datastore narrows a --profile' in capsys.readouterr().err
