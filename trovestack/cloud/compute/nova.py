"""nova-conductor, nova-scheduler and nova-compute (libvirt, qemu TCG).

Conductor and scheduler run on host loopback; nova-compute runs inside the
namespace (with its privsep helpers, which create the guests' taps there).
They and the control plane's nova-api share the API, cell0 and cell1
databases on the layer's MariaDB (:mod:`.mariadb`); nova-api gets those,
messaging, placement and neutron settings of its own (:func:`api_settings`).
"""

import pathlib
from typing import Any

from trovestack.cloud import configs
from trovestack.cloud import layout as layout_mod
from trovestack.cloud import supervision
from trovestack.cloud.compute import common
from trovestack.cloud.compute import mariadb
from trovestack.cloud.compute import network
from trovestack.cloud.compute import paths as paths_mod

PRIVSEP_SECTIONS = ('privsep', 'nova_sys_admin', 'vif_plug_ovs_privileged',
                    'vif_plug_linux_bridge_privileged', 'privsep_osbrick')
# MiB of qemu's TCG translation cache per guest: qemu's default (1 GiB)
# makes a guest's RSS 1.5-2 GB; 128 MiB keeps it under 1 GB.
TB_CACHE_MIB = 128
# The one nova service inside the namespace (it plugs the guests' ports).
COMPUTE = 'nova-compute'


def config_file(paths: paths_mod.ComputePaths) -> pathlib.Path:
    return paths.config_dir('nova') / 'nova.conf'


# API database, cell1's and cell0's, on the layer's MariaDB.
API_DATABASE, CELL_DATABASE, CELL0_DATABASE = 'nova_api', 'nova', 'nova_cell0'
DATABASES = (API_DATABASE, CELL_DATABASE, CELL0_DATABASE)


def _databases(paths: paths_mod.ComputePaths) -> dict[str, dict[str, str]]:
    return {'api_database': {'connection': mariadb.url(paths, API_DATABASE)},
            'database': {'connection': mariadb.url(paths, CELL_DATABASE)}}


def api_settings(state: layout_mod.CloudState, paths: paths_mod.ComputePaths,
                 transport_url: str) -> dict[str, dict[str, Any]]:
    """Sections nova-api needs to create servers on this cloud."""
    return {
        'DEFAULT': {'transport_url': transport_url,
                    # One compute host: a resize (Trove's flavor resize)
                    # lands where the server is.
                    'allow_resize_to_same_host': 'true'},
        **_databases(paths),
        'placement': common.service_auth(state, 'nova'),
        'neutron': common.service_auth(state, 'nova'),
        # Volumes of servers booted with a block device mapping (Trove's).
        'cinder': {**common.service_auth(state, 'nova'),
                   'os_region_name': configs.REGION},
        'service_user': {**common.service_auth(state, 'nova'),
                         'send_service_user_token': 'true'},
    }


def write_config(state: layout_mod.CloudState, cstate: paths_mod.ComputeState,
                 paths: paths_mod.ComputePaths,
                 transport_url: str) -> pathlib.Path:
    data = paths.service_dir('nova')
    api = api_settings(state, paths, transport_url)
    helper = (f'{common.tool("privsep-helper")} --config-file '
              f'{config_file(paths)}')
    sections = {
        'DEFAULT': {
            'debug': 'false', 'use_stderr': 'true',
            'transport_url': transport_url,
            'host': paths_mod.COMPUTE_HOST,
            'my_ip': '127.0.0.1',
            'compute_driver': 'libvirt.LibvirtDriver',
            'state_path': str(data),
            'instances_path': str(paths.instances_dir),
            'force_config_drive': 'true',
            'instance_name_template': f'{paths.namespace}-%08x',
            'heal_instance_info_cache_interval': '0',
            'reserved_host_memory_mb': '512',
            # cloud down stops the guests; the next up starts those that
            # ran (a hard reboot: nova writes their domains again).
            'resume_guests_state_on_host_boot': 'true',
            **api['DEFAULT'],
        },
        **{key: value for key, value in api.items() if key != 'DEFAULT'},
        'keystone_authtoken': common.authtoken(state, 'nova'),
        'libvirt': {'virt_type': 'qemu', 'cpu_mode': 'none',
                    'tb_cache_size': str(TB_CACHE_MIB)},
        'vnc': {'enabled': 'false'},
        'os_vif_ovs': {'ovsdb_connection': network.connection(paths, 'db'),
                       'ovsdb_interface': 'native'},
        'scheduler': {'discover_hosts_in_cells_interval': '5',
                      'workers': '1'},
        'conductor': {'workers': '1'},
        'oslo_concurrency': {'lock_path': str(data / 'locks')},
        **{section: {'helper_command': helper}
           for section in PRIVSEP_SECTIONS},
    }
    return common.write_config(config_file(paths), sections)


def setup_commands(paths: paths_mod.ComputePaths,
                   transport_url: str) -> list[common.Command]:
    """Schemas and cell mappings (cell0 and cell1) on the layer's MariaDB."""
    manage: common.Command = [common.tool('nova-manage'), '--config-file',
                              config_file(paths)]
    cell1 = _databases(paths)['database']['connection']
    return [
        [*manage, 'api_db', 'sync'],
        [*manage, 'cell_v2', 'map_cell0', '--database_connection',
         mariadb.url(paths, CELL0_DATABASE)],
        [*manage, 'db', 'sync'],
        [*manage, 'cell_v2', 'create_cell', '--name', 'cell1',
         '--transport-url', transport_url, '--database_connection', cell1],
    ]


def daemons_in_order(
        paths: paths_mod.ComputePaths) -> list[supervision.Program]:
    def service(name: str, netns: str | None = None) -> supervision.Program:
        return supervision.Program(
            name, [common.tool(name), '--config-file', config_file(paths)],
            netns)
    return [service('nova-conductor'), service('nova-scheduler'),
            service(COMPUTE, paths.namespace)]
