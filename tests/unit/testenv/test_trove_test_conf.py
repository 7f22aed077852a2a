import json
import os
import stat

import pytest

from tests.unit.testenv import fakes
from trovestack import testenv
from trovestack.testenv import datastores
from trovestack.testenv import trove_test_conf

CHOICE = datastores.DatastoreChoice('mysql', 'ds-1', '8.4', 'v-1', 'img-1')


def _conn(username, roles, password='secret'):
    conn = fakes.connection()
    conn.endpoint_for.return_value = 'http://h:8779/v1.0/proj-1'
    conn.config.get_auth_args.return_value = {
        'auth_url': 'http://h/identity/v3/', 'username': username,
        'project_name': username, 'password': password}
    conn.config.config = {'verify': True}
    conn.config.get_region_name.return_value = 'RegionOne'
    conn.current_project_id = f'{username}-id'
    conn.session.auth.get_access.return_value.role_names = roles
    return conn


def _build():
    return trove_test_conf.build(
        _conn('admin', ['admin']), CHOICE,
        user_conns=[_conn('demo', ['member'])],
        flavor_names={'test.small-7', 'test.small-7.resize', 'ds2G'})


def test_build_from_live_values():
    values = _build()
    assert values['dbaas_url'] == 'http://h:8779/v1.0'
    assert values['version_url'] == 'http://h:8779'
    assert values['trove_auth_url'] == 'http://h/identity/v3/auth/tokens'
    assert values['dbaas_datastore_version'] == '8.4'
    assert values['dbaas_image'] == 'img-1'
    assert values['instance_flavor_name'] == 'test.small-7'
    assert 'instance_eph_flavor_name' not in values
    admin, demo = values['users']
    assert (admin['auth_user'], admin['requirements']['is_admin']) == \
        ('admin', True)
    assert (demo['tenant_id'], demo['requirements']['is_admin']) == \
        ('demo-id', False)
    assert values['swift_enabled'] is False


def _redacted(values):
    """A copy safe to print: the users' auth keys replaced."""
    copy = dict(values)
    copy['users'] = [{k: ('<hidden>' if k == 'auth_key' else v)
                      for k, v in user.items()}
                     for user in values.get('users', [])]
    return copy


def test_redacted_hides_passwords():
    text = json.dumps(_redacted(_build()))
    assert 'secret' not in text and '<hidden>' in text


def test_write_is_private_and_readable_by_trove(tmp_path):
    path = str(tmp_path / 'test.conf')
    values = _build()
    assert trove_test_conf.write(path, values).action == 'created'
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert trove_test_conf.write(path, values).action == 'unchanged'
    assert trove_test_conf.write(path, dict(values, trove_volume_size=2),
                                 dry_run=True).action == 'would-update'
    from trove.tests import config

    config.CONFIG.load_from_file(path)
    assert config.CONFIG.dbaas_datastore == 'mysql'
    assert config.CONFIG.values['users'][1]['auth_user'] == 'demo'


def test_no_database_endpoint():
    conn = _conn('admin', ['admin'])
    conn.endpoint_for.return_value = None
    with pytest.raises(testenv.TestEnvError, match='no database'):
        trove_test_conf.build(conn, CHOICE)
