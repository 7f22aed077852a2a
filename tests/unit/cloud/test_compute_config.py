"""The compute layer's configuration: nova and placement on its MariaDB."""

from trovestack.cloud import layout as layout_mod
from trovestack.cloud.compute import mariadb
from trovestack.cloud.compute import nova
from trovestack.cloud.compute import paths as paths_mod
from trovestack.cloud.compute import placement
from trovestack.testenv import ini


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
