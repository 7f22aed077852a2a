"""Unit tests for trovestack.tempest_runner (no tempest run)."""

import pytest

from trovestack import tempest_runner

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
