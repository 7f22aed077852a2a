import types

import pytest

from tests.unit.testenv import fakes
from tests.unit.testenv import plugin_opts
from trovestack import testenv
from trovestack.testenv import datastores
from trovestack.testenv import tempest_conf

MYSQL = datastores.DatastoreChoice('mysql', 'ds-1', '8.4', 'v-1', 'img')
PG = datastores.DatastoreChoice('postgresql', 'ds-2', '16', 'v-2', 'img')
FLAVORS = {'d3', 'd4', '16'}


def _settings(conn=None, **kwargs):
    conn = conn or fakes.connection()
    kwargs.setdefault('flavor_ids', FLAVORS)
    return tempest_conf.derive_settings(conn, [MYSQL, PG], **kwargs)


def test_derived_settings_without_network_or_volume():
    assert _settings() == [
        ('database', 'enabled_datastores', 'mysql,postgresql'),
        ('database', 'default_datastore_versions', 'mysql:8.4,postgresql:16'),
        ('database', 'flavor_id', 'd3'),
        ('database', 'resize_flavor_id', 'd4'),
        ('database', 'remove_swift_account', 'False'),
        ('service_available', 'trove', 'True'),
    ]


def _placement_cloud(host_vcpus):
    conn = fakes.connection(services=('compute', 'placement'))
    conn.placement.resource_providers.return_value = ['host']
    conn.placement.resource_provider_inventories.return_value = [
        types.SimpleNamespace(resource_class='VCPU', max_unit=host_vcpus),
        types.SimpleNamespace(resource_class='MEMORY_MB', max_unit=24000)]
    conn.compute.flavors.return_value = [
        fakes.flavor('ds2G', 'd3', 2048, 10, 2),
        fakes.flavor('ds4G', 'd4', 4096, 20, 4),
        fakes.flavor('test.large-8.resize', '25r', 2064, 8, 2),
        fakes.flavor('test.eph.large-13.resize', '26re', 2064, 13, 2, 1),
        fakes.flavor('test.large-13.resize', '26r', 2064, 13, 2),
        fakes.flavor('test.large-18.resize', '27r', 2064, 18, 2)]
    return conn


def test_a_resize_flavor_no_host_can_take_is_replaced(caplog):
    """d4's 4 vCPUs on 2-CPU hosts: the smallest flavor with more memory,
    the disk of d3 at least, no ephemeral disk, and 2 vCPUs."""
    settings = dict(((s, o), v) for s, o, v in _settings(
        _placement_cloud(2), flavor_ids=FLAVORS | {'26r'}))
    assert settings['database', 'resize_flavor_id'] == '26r'
    assert 'resize_flavor_id d4 has 4 vCPUs, more than a compute host ' \
        'has (2): 26r' in caplog.text
    assert tempest_conf.fitting_resize_flavor(
        _placement_cloud(8), 'd3', 'd4') == 'd4'
    # Without Placement in the catalog (or its answer) nothing is changed.
    assert tempest_conf.fitting_resize_flavor(
        fakes.connection(), 'd3', 'd4') == 'd4'


def test_unknown_flavor_is_an_error():
    with pytest.raises(testenv.TestEnvError,
                       match="flavor_id 'nope' is not a flavor in Nova"):
        _settings(flavor_id='nope')


def test_network_and_volume_type_from_their_services():
    conn = fakes.connection(services=('network', 'block-storage'))
    conn.block_storage.get_type.return_value.name = 'lvmdriver-1'
    settings = dict(((s, o), v) for s, o, v in _settings(conn))
    assert settings['database', 'shared_network'] == 'private'
    assert settings['database', 'volume_type'] == 'lvmdriver-1'
    conn.block_storage.get_type.assert_called_once_with('default')
    conn.network.find_network.return_value = None
    with pytest.raises(testenv.TestEnvError,
                       match="network 'mine' does not exist"):
        _settings(conn, shared_network='mine')


def test_a_network_the_test_users_can_not_see_is_not_written():
    """devstack's "private" belongs to its demo project: not shared, so
    trove-tempest-plugin (whose default is "private") is told none, and
    makes a network of its own instead."""
    conn = fakes.connection(services=('network',))
    conn.network.find_network.return_value.is_shared = False
    settings = dict(((s, o), v) for s, o, v in _settings(conn))
    assert settings['database', 'shared_network'] == ''
    with pytest.raises(testenv.TestEnvError,
                       match="network 'private' is not shared"):
        _settings(conn, shared_network='private')
    conn.network.find_network.return_value = None
    settings = dict(((s, o), v) for s, o, v in _settings(conn))
    assert settings['database', 'shared_network'] == ''


def test_every_written_option_is_a_plugin_option(tmp_path):
    conn = fakes.connection(services=('network', 'block-storage'))
    conn.block_storage.get_type.return_value.name = 'lvmdriver-1'
    settings = _settings(conn, flavor_id='16')
    path = tmp_path / 'tempest.conf'
    tempest_conf.merge(str(path), settings)
    parsed = plugin_opts.check(path, [(s, o) for s, o, _ in settings])
    assert parsed['database', 'enabled_datastores'] == ['mysql', 'postgresql']
    assert parsed['database', 'default_datastore_versions'] == {
        'mysql': '8.4', 'postgresql': '16'}
    assert parsed['database', 'remove_swift_account'] is False
    assert parsed['service_available', 'trove'] is True
    assert {o for s, o, _ in settings if s == 'database'} == set(
        tempest_conf.DATABASE_OPTIONS)


def test_merge_keeps_everything_else_and_converges(tmp_path):
    path = tmp_path / 'tempest.conf'
    original = ('# mine\n[DEFAULT]\ndebug = True\n\n[database]\n'
                '# keep me\nflavor_id = 1\nbuild_interval = 5\n\n'
                '[identity]\nuri_v3 = http://k/v3\n')
    path.write_text(original)
    changes = tempest_conf.merge(str(path), _settings())
    actions = {c.name: c.action for c in changes}
    assert actions['[database] flavor_id'] == 'updated'
    assert actions['[database] enabled_datastores'] == 'created'
    text = path.read_text()
    for line in original.splitlines():
        if line != 'flavor_id = 1':
            assert line in text.splitlines()
    again = tempest_conf.merge(str(path), _settings())
    assert {c.action for c in again} == {'unchanged'}
    assert path.read_text() == text


def test_dry_run_and_missing_directory(tmp_path):
    path = tmp_path / 'tempest.conf'
    changes = tempest_conf.merge(str(path), _settings(), dry_run=True)
    assert {c.action for c in changes} == {'would-create'}
    assert not path.exists()
    with pytest.raises(testenv.TestEnvError, match='does not exist'):
        tempest_conf.merge(str(tmp_path / 'no' / 'tempest.conf'), _settings())


def _admin_conn():
    conn = fakes.connection(services=('compute', 'image', 'block-storage'))
    conn.config.auth = {'auth_url': 'http://127.0.0.1:5000',
                        'username': 'admin', 'password': 's3cret',
                        'project_name': 'admin', 'user_domain_name': 'Default'}
    conn.config.region_name = 'RegionOne'
    return conn


def test_cloud_settings_for_dynamic_credentials():
    settings = dict(((s, o), v)
                    for s, o, v in tempest_conf.cloud_settings(_admin_conn()))
    assert settings['auth', 'use_dynamic_credentials'] == 'True'
    assert settings['auth', 'admin_password'] == 's3cret'
    assert settings['identity', 'uri_v3'] == 'http://127.0.0.1:5000/v3'
    assert settings['identity', 'region'] == 'RegionOne'
    assert settings['service_available', 'cinder'] == 'True'
    assert settings['service_available', 'neutron'] == 'False'


def test_cloud_settings_need_a_password_account():
    conn = _admin_conn()
    conn.config.auth = {'auth_url': 'http://127.0.0.1:5000', 'token': 't'}
    with pytest.raises(testenv.TestEnvError, match='lacks username'):
        tempest_conf.cloud_settings(conn)


def test_a_password_makes_the_file_private_and_is_not_shown(tmp_path):
    path = tmp_path / 'tempest.conf'
    path.write_text('[DEFAULT]\nlog_file = t.log\n')
    path.chmod(0o644)
    rows = tempest_conf.merge(path, tempest_conf.cloud_settings(
        _admin_conn()))
    assert path.stat().st_mode & 0o777 == 0o600
    assert 's3cret' not in ' '.join(str(row) for row in rows)
    assert 'admin_password = s3cret' in path.read_text()
    new = tmp_path / 'new.conf'
    tempest_conf.merge(new, tempest_conf.cloud_settings(_admin_conn()))
    assert new.stat().st_mode & 0o777 == 0o600
