"""trovestack gate-tests / int-tests: real tempest runs against the local
control plane.  Its Nova is API only, so the plugin's scenario classes skip
by config (their datastores are not enabled) while tempest's identity API
tests run for real with dynamic credentials made through Keystone."""

import json
import re

import pytest
import yaml

from tests import helpers
from tests import load_image_support as support

SELECTION = (r'^trove_tempest_plugin\.tests\.scenario\.test_instance_basic'
             r'\.TestInstanceBasicMySQL|^tempest\.api\.identity\.v3'
             r'\.test_api_discovery')


@pytest.fixture(scope='module')
def tempest_conf(local_cloud, tmp_path_factory):
    """[auth]/[identity] for the local cloud, the rest from test-config."""
    work = tmp_path_factory.mktemp('tempest')
    cloud = yaml.safe_load(local_cloud.clouds_yaml.read_text())[
        'clouds'][local_cloud.admin_cloud]
    auth = cloud['auth']
    conf = work / 'tempest.conf'
    conf.write_text(
        '[auth]\nuse_dynamic_credentials = True\n'
        f'admin_username = {auth["username"]}\n'
        f'admin_password = {auth["password"]}\n'
        f'admin_project_name = {auth["project_name"]}\n'
        'admin_domain_name = Default\n\n'
        f'[identity]\nuri_v3 = {auth["auth_url"]}\nauth_version = v3\n'
        f'region = {cloud["region_name"]}\n\n'
        '[identity-feature-enabled]\napi_v2 = False\n\n'
        '[service_available]\nneutron = False\nswift = False\n'
        'cinder = False\n')
    datastore = support.unique('gate')
    support.load(local_cloud, support.make_raw_image(work / 'guest.img'),
                 datastore, '1.0', '--manager', 'mysql', '--default')
    env = local_cloud.env()
    helpers.run('trovestack', 'flavors', '--flavor-set', 'tempest',
                '--os-cloud', local_cloud.admin_cloud, env=env)
    helpers.run('trovestack', 'test-config', '--tempest-conf', conf,
                '--datastore', datastore, '--os-cloud',
                local_cloud.admin_cloud, env=env)
    return conf


def test_gate_tests_lists_the_basic_scenarios(tempest_conf, tmp_path):
    result = helpers.run('trovestack', 'gate-tests', '--tempest-conf',
                         tempest_conf, '--workspace-dir', tmp_path / 'ws',
                         '--list-tests')
    listed = result.stdout.splitlines()
    basic = [t for t in listed if t.startswith(
        'trove_tempest_plugin.tests.scenario.test_instance_basic.')]
    assert basic and len(basic) == len(
        [t for t in listed if t.startswith('trove_tempest_plugin')])
    assert (tmp_path / 'ws' / 'etc' / 'tempest.conf').stat().st_mode \
        & 0o077 == 0


def test_int_tests_lists_every_plugin_test(tempest_conf, tmp_path):
    result = helpers.run('trovestack', 'int-tests', '--tempest-conf',
                         tempest_conf, '--workspace-dir', tmp_path / 'ws',
                         '--list-tests', '--exclude-regex', 'test_backup')
    listed = result.stdout
    assert 'test_replication.TestReplicationMySQL' in listed
    assert 'test_instance_basic.TestInstanceBasicMySQL' in listed
    assert 'test_backup.' not in listed


def test_gate_tests_runs_tempest_for_real(tempest_conf, tmp_path):
    workspace = tmp_path / 'ws'
    result = helpers.run('trovestack', 'gate-tests', '--tempest-conf',
                         tempest_conf, '--workspace-dir', workspace,
                         '--regex', SELECTION, '--serial')
    out = result.stdout
    assert re.search(r'Passed: [1-9]', out), out
    assert '- Failed: 0' in out
    assert 'SKIPPED: Datastore mysql is not enabled' in out
    assert (workspace / 'logs' / 'tempest.log').is_file()
    # The result table: printed, and as JSON in the workspace.
    table = json.loads((workspace / 'results.json').read_text())
    assert table and all(set(row) == {'test', 'datastore', 'result',
                                      'seconds'} for row in table)
    assert {row['result'] for row in table} <= {'success', 'skip', 'fail'}
    assert any(row['datastore'] == 'mysql' and row['result'] == 'skip'
               for row in table), table
    assert '(results in ' in out
    assert table[0]['test'] in out

    # Re-running reuses the workspace.
    again = helpers.run('trovestack', 'gate-tests', '--tempest-conf',
                        tempest_conf, '--workspace-dir', workspace,
                        '--regex', r'^tempest\.api\.identity\.v3'
                        r'\.test_api_discovery\..*test_list_api_versions')
    assert 'Passed: 1' in again.stdout


def test_gate_tests_profile_selects_scenario_modules(tempest_conf,
                                                     tmp_path):
    result = helpers.run('trovestack', 'gate-tests', '--tempest-conf',
                         tempest_conf, '--workspace-dir', tmp_path / 'ws',
                         '--list-tests', '--profile', 'backup')
    listed = [line for line in result.stdout.splitlines()
              if line.startswith('trove_tempest_plugin')]
    assert listed
    assert all('.test_backup.' in line for line in listed), listed
    assert {'MariaDB', 'PostgreSQL', 'MySQL'} <= {
        suffix for line in listed
        for suffix in ('MariaDB', 'PostgreSQL', 'MySQL')
        if f'TestBackup{suffix}' in line}


def test_gate_tests_dry_run_changes_nothing(tempest_conf, tmp_path):
    result = helpers.run('trovestack', 'gate-tests', '--tempest-conf',
                         tempest_conf, '--workspace-dir', tmp_path / 'ws',
                         '--dry-run', '--concurrency', '2')
    assert 'tempest run --config-file' in result.stdout
    assert '--concurrency 2' in result.stdout
    assert not (tmp_path / 'ws').exists()


def test_gate_tests_refuses_a_config_without_trove(tmp_path):
    conf = tmp_path / 'tempest.conf'
    conf.write_text('[identity]\nuri_v3 = http://127.0.0.1:1/v3\n')
    result = helpers.run('trovestack', 'gate-tests', '--tempest-conf', conf,
                         '--workspace-dir', tmp_path / 'ws', check=False)
    assert result.returncode != 0
    assert '[service_available] trove' in result.stderr
    assert not (tmp_path / 'ws').exists()
