"""The local cloud's service list, ports, state and configuration files."""

import json

from trovestack.cloud import configs
from trovestack.cloud import layout
from trovestack.cloud import services

URL = 'rabbit://trovestack:secret@127.0.0.1:25004/trovestack'


def test_one_service_list_in_port_order():
    assert services.PORTED == ['keystone', 'glance', 'nova', 'trove',
                               'rabbitmq']
    assert services.CATALOG == {'identity': 'keystone', 'image': 'glance',
                                'compute': 'nova', 'database': 'trove'}
    rpc = {name: s.rpc_topic for name, s in services.SERVICES.items()
           if s.kind == services.RPC}
    assert rpc == {'trove-taskmanager': 'taskmanager',
                   'trove-conductor': 'trove-conductor'}


def test_rpc_services_run_trove_console_scripts_on_trove_conf(tmp_path):
    lay = layout.Layout(tmp_path)
    state = layout.CloudState.new(25000, tmp_path / 'c.yaml',
                                  services.PORTED)
    argv = services.SERVICES['trove-conductor'].command(state, lay)
    assert argv[0].endswith('/trove-conductor')
    assert argv[1:] == ['--config-file',
                        str(tmp_path / 'trove' / 'etc' / 'trove.conf')]
    assert services.SERVICES['trove-conductor'].setup_commands() == []


def test_new_state_takes_consecutive_ports_from_the_base():
    state = layout.CloudState.new(25000, '/c.yaml', services.PORTED)
    assert state.ports == {'keystone': 25000, 'glance': 25001,
                           'nova': 25002, 'trove': 25003,
                           'rabbitmq': 25004}


def test_older_state_gets_ports_for_new_services(tmp_path):
    lay = layout.Layout(tmp_path)
    old = {'ports': {'keystone': 1, 'glance': 2, 'nova': 3, 'trove': 4},
           'admin_password': 'a', 'demo_password': 'd',
           'service_password': 's', 'clouds_yaml': '/c.yaml',
           'bootstrapped': True}
    lay.state_file.write_text(json.dumps(old))
    state = lay.load_state()
    state.add_ports([*services.PORTED, 'registry'])
    assert state.ports['keystone'] == 1
    assert {'rabbitmq', 'registry'} <= set(state.ports)
    assert len(set(state.ports.values())) == 6


def test_state_file_is_private(tmp_path):
    lay = layout.Layout(tmp_path)
    lay.save_state(layout.CloudState.new(0, '/c.yaml', services.PORTED))
    assert lay.state_file.stat().st_mode & 0o777 == 0o600


def test_trove_and_nova_use_the_broker_keystone_and_glance_do_not(tmp_path):
    lay = layout.Layout(tmp_path)
    state = layout.CloudState.new(25000, '/c.yaml', services.PORTED)
    trove = configs.trove_conf(state, lay, URL)
    assert trove['DEFAULT']['transport_url'] == URL
    assert trove['DEFAULT']['control_exchange'] == configs.CONTROL_EXCHANGE
    assert trove['DEFAULT']['trove_conductor_workers'] == '1'
    assert configs.nova_conf(state, lay, URL)['DEFAULT'][
        'transport_url'] == URL
    for render in (configs.keystone_conf, configs.glance_conf):
        assert render(state, lay, URL)['DEFAULT']['transport_url'] == \
            'fake:/'


def test_default_paths_follow_xdg(monkeypatch, tmp_path):
    monkeypatch.delenv('TROVESTACK_STATE_DIR', raising=False)
    monkeypatch.setenv('XDG_STATE_HOME', str(tmp_path / 's'))
    monkeypatch.setenv('XDG_CONFIG_HOME', str(tmp_path / 'c'))
    assert layout.default_state_dir() == tmp_path / 's/trovestack/cloud'
    assert layout.default_clouds_yaml() == tmp_path / 'c/openstack/clouds.yaml'
    monkeypatch.setenv('TROVESTACK_STATE_DIR', str(tmp_path / 'x'))
    assert layout.default_state_dir() == tmp_path / 'x'
