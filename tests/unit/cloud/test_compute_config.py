"""The compute layer's configuration: nova and placement on its MariaDB."""

import pytest

from trovestack.cloud import layout as layout_mod
from trovestack.cloud.compute import ceph
from trovestack.cloud.compute import cinder
from trovestack.cloud.compute import mariadb
from trovestack.cloud.compute import neutron
from trovestack.cloud.compute import nova
from trovestack.cloud.compute import object_store
from trovestack.cloud.compute import paths as paths_mod
from trovestack.cloud.compute import placement
from trovestack.common import ini


def _state():
    return layout_mod.CloudState(
        ports={'keystone': 5000}, admin_password='a', demo_password='d',
        service_password='s', clouds_yaml='/dev/null')


def test_nova_and_nova_api_use_the_layers_mariadb(tmp_path):
    paths = paths_mod.ComputePaths(tmp_path)
    cstate = paths_mod.ComputeState(ports={'placement': 1, 'neutron': 2})
    settings = nova.api_settings(_state(), paths, 'rabbit://u:p@h:1/')
    assert settings['api_database']['connection'] == mariadb.url(
        paths, 'nova_api')
    assert settings['database']['connection'] == mariadb.url(paths, 'nova')
    path = nova.write_config(_state(), cstate, paths, 'rabbit://u:p@h:1/')
    text = path.read_text()
    assert 'sqlite' not in text
    assert ini.IniFile.load(path).get('api_database', 'connection') == \
        mariadb.url(paths, 'nova_api')


def test_nova_setup_syncs_the_api_database_then_maps_cells(tmp_path):
    paths = paths_mod.ComputePaths(tmp_path)
    commands = [argv[3:5] for argv in nova.setup_commands(paths, 'r://')]
    assert commands == [['api_db', 'sync'], ['cell_v2', 'map_cell0'],
                        ['db', 'sync'], ['cell_v2', 'create_cell']]
    cell0 = nova.setup_commands(paths, 'r://')[1]
    assert mariadb.url(paths, 'nova_cell0') in cell0


def test_placement_uses_the_layers_mariadb(tmp_path):
    paths = paths_mod.ComputePaths(tmp_path)
    path = placement.write_config(_state(), None, paths)
    assert ini.IniFile.load(path).get('placement_database', 'connection') \
        == mariadb.url(paths, placement.DATABASE)


def test_state_picks_the_ceph_ports_and_two_provider_bridges():
    cstate = paths_mod.ComputeState.new()
    first = cstate.ports['ceph-osd']
    assert ceph.osd_ports(cstate) == list(range(first, first + 8))
    assert 'ceph-mon' in cstate.ports
    assert [bridge for _, bridge, _ in cstate.bridges()] == [
        paths_mod.MGMT_BRIDGE, paths_mod.DATA_BRIDGE]
    assert cstate.data_gateway == '10.223.0.1'
    assert cstate.private_gateway == '10.224.0.1'
    # A state saved before Ceph joined the layer gets its ports on load.
    old = paths_mod.ComputeState(ports={'placement': 1})
    paths_mod._add_missing_ports(old.ports)
    assert {'ceph-mon', 'ceph-osd', 'cinder', 'radosgw'} <= set(old.ports)


def test_ceph_runs_on_loopback_with_cephx(tmp_path):
    paths = paths_mod.ComputePaths(tmp_path)
    cstate = paths_mod.ComputeState(ports={'ceph-mon': 6789,
                                           'ceph-osd': 7000})
    text = ceph.write_config(cstate, paths).read_text()
    assert 'mon_host = v1:127.0.0.1:6789' in text
    assert 'public_addr = 127.0.0.1\ncluster_addr = 127.0.0.1' in text
    assert 'ms_bind_port_min = 7000\nms_bind_port_max = 7007' in text
    for who in ('cluster', 'service', 'client'):
        assert f'auth_{who}_required = cephx' in text
    assert f'keyring = {tmp_path}/compute/ceph/osd-$id/keyring' in text
    assert ceph.fsid(paths) == ceph.fsid(paths_mod.ComputePaths(tmp_path))
    assert ceph.keyring(paths, 'client.cinder').name == \
        'ceph.client.cinder.keyring'


def test_a_cluster_made_before_cephx_keeps_auth_off(tmp_path):
    paths = paths_mod.ComputePaths(tmp_path)
    cstate = paths_mod.ComputeState(ports={'ceph-mon': 6789,
                                           'ceph-osd': 7000},
                                    set_up=['cinder', 'ceph'])
    assert not ceph.cephx(cstate)
    text = ceph.write_config(cstate, paths).read_text()
    assert 'auth_client_required = none' in text
    cstate.set_up.append('cephx')
    assert ceph.cephx(cstate)


def test_object_storage_is_a_swift_api_on_loopback_with_keystone(tmp_path):
    paths = paths_mod.ComputePaths(tmp_path)
    cstate = paths_mod.ComputeState(ports={'ceph-mon': 6789,
                                           'ceph-osd': 7000,
                                           'radosgw': 7480})
    state = _state()
    state.service_password = 'not-in-ceph.conf'
    text = ceph.write_config(cstate, paths, object_store.config_section(
        state, cstate, paths)).read_text()
    section = text.split(f'[{ceph.RGW}]')[1]
    assert 'rgw_frontends = beast endpoint=127.0.0.1:7480' in section
    assert 'rgw_keystone_url = http://127.0.0.1:5000\n' in section
    assert 'rgw_enable_apis = swift, swift_auth, admin' in section
    # The password is in a file of its own, readable by its owner only.
    assert state.service_password not in text
    object_store.write_password(state, paths)
    secret = object_store.password_file(paths)
    assert secret.read_text() == state.service_password
    assert secret.stat().st_mode & 0o077 == 0
    assert object_store.endpoint_url(cstate) == (
        'http://127.0.0.1:7480/swift/v1/AUTH_$(project_id)s')
    assert object_store.guest_url(cstate) == (
        f'http://{cstate.gateway}:7480/swift/v1/AUTH_')


def test_guests_reach_the_broker_registry_and_object_storage_on_the_gateway():
    from trovestack.cloud.compute import cloud

    cstate = paths_mod.ComputeState(ports={'ceph-mon': 6789,
                                           'ceph-osd': 7000,
                                           'radosgw': 7480})
    rules = cloud.ComputeLayer._forward_rules(cstate, (5000,), (5672, 5001))
    assert (cstate.gateway, 5672, 5672) in rules
    assert (cstate.gateway, 5001, 5001) in rules
    assert (cstate.gateway, 7480, 7480) in rules
    assert (cstate.gateway, 5000, 5000) not in rules
    assert ('127.0.0.1', 5000, 5000) in rules
    assert {address for address, _, _ in rules} == {'127.0.0.1',
                                                    cstate.gateway}


def test_cinder_volume_uses_the_rbd_pool(tmp_path):
    paths = paths_mod.ComputePaths(tmp_path)
    cstate = paths_mod.ComputeState(ports={'cinder': 8776, 'ceph-mon': 1,
                                           'ceph-osd': 2})
    path = cinder.write_config(_state(), cstate, paths, 'rabbit://u:p@h:1/')
    conf = ini.IniFile.load(path)
    assert conf.get('DEFAULT', 'enabled_backends') == cinder.BACKEND
    assert conf.get(cinder.BACKEND, 'volume_driver').endswith('RBDDriver')
    assert conf.get(cinder.BACKEND, 'rbd_pool') == ceph.POOL
    assert conf.get(cinder.BACKEND, 'rbd_ceph_conf') == str(
        ceph.config_file(paths))
    assert conf.get(cinder.BACKEND, 'rbd_user') == ceph.CLIENT
    assert conf.get(cinder.BACKEND, 'rbd_secret_uuid') == \
        ceph.secret_uuid(paths)


def test_neutron_has_a_flat_network_per_bridge(tmp_path):
    paths = paths_mod.ComputePaths(tmp_path)
    cstate = paths_mod.ComputeState(ports={'neutron': 9696})
    paths.config_dir('neutron').mkdir(parents=True)
    path = neutron.write_config(_state(), cstate, paths, 'rabbit://u:p@h:1/')
    assert ini.IniFile.load(path).get('ml2_type_flat', 'flat_networks') == \
        'mgmt,data'


def test_ceph_setup_commands_wait_for_a_refusing_monitor(monkeypatch):
    """A monitor that refuses a command right after starting: tried again
    until it takes it; one that never does: its last error."""
    from trovestack.cloud.compute import daemons

    answers = [daemons.ComputeError('Error EPERM: problem getting command '
                                    'descriptions from mon.')] * 2
    calls = []

    def fake_ceph(paths, *args, check=True):
        calls.append(args)
        if answers:
            raise answers.pop()
        return 'done'

    monkeypatch.setattr(ceph, '_ceph', fake_ceph)
    monkeypatch.setattr(ceph.waiting.time, 'sleep', lambda seconds: None)
    assert ceph._ceph_setup(None, 'osd', 'crush', 'add') == 'done'
    assert len(calls) == 3

    monkeypatch.setattr(ceph, 'SETUP_RETRY_SECONDS', 0)
    answers[:] = [daemons.ComputeError('refused')] * 5
    with pytest.raises(daemons.ComputeError, match='refused'):
        ceph._ceph_setup(None, 'osd', 'pool', 'create')


def test_users_router_has_a_fixed_address_and_no_snat():
    """The namespace routes the private network through router1's fixed
    address; an older router (SNAT, another address) is converged."""
    import types
    from unittest import mock

    from trovestack.trove import compute_trove

    cstate = paths_mod.ComputeState(ports={})
    assert cstate.router_address == '10.223.0.2'
    public = types.SimpleNamespace(id='pub')
    subnet = types.SimpleNamespace(id='pub-sub')
    gateway = compute_trove._router_gateway(public, subnet,
                                            cstate.router_address)
    assert gateway == {'network_id': 'pub', 'enable_snat': False,
                       'external_fixed_ips': [{'subnet_id': 'pub-sub',
                                               'ip_address': '10.223.0.2'}]}
    private = types.SimpleNamespace(id='priv-sub', cidr='10.224.0.0/24')
    interface = types.SimpleNamespace(fixed_ips=[{'subnet_id': 'priv-sub'}])
    conn = mock.Mock()
    conn.network.find_router.return_value = types.SimpleNamespace(
        id='r1', external_gateway_info={
            'network_id': 'pub', 'enable_snat': True,
            'external_fixed_ips': [{'subnet_id': 'pub-sub',
                                    'ip_address': '10.223.0.37'}]})
    conn.network.ports.return_value = [interface]
    row = compute_trove._router(conn, gateway, private)
    assert (row.action, row.detail) == (
        'updated', 'r1 gateway 10.223.0.2 without SNAT')
    router = conn.network.find_router.return_value
    assert conn.network.update_router.call_args_list == [
        mock.call(router, external_gateway_info={}),
        mock.call(router, external_gateway_info=gateway)]
    conn.network.find_router.return_value.external_gateway_info = gateway
    assert compute_trove._router(conn, gateway, private).action == \
        'unchanged'
