"""Neutron API with ML2/OVN (host loopback; OVN databases over unix sockets).

neutron 29 serves its API as a WSGI application only (no neutron-server
command); it learns its worker count from ``ASGI_WORKERS`` when it runs
under neither uwsgi nor mod_wsgi, and OVN's hash ring refuses to work
without it.  Its database lives on the layer's own MariaDB
(:mod:`.mariadb`): its migrations do not run on SQLite, a schema made from
its models lacks the rows migrations add (the default security group
rules, so guests' DHCP is dropped), and SQLite locks up under its
concurrent writers.
"""

import pathlib
import shutil
import sys

from trovestack.cloud import layout as layout_mod
from trovestack.cloud import supervision
from trovestack.cloud.compute import common
from trovestack.cloud.compute import mariadb
from trovestack.cloud.compute import network
from trovestack.cloud.compute import paths as paths_mod

SERVICE_TYPE = 'network'
DATABASE = 'neutron'


def config_file(paths: paths_mod.ComputePaths) -> pathlib.Path:
    return paths.config_dir('neutron') / 'neutron.conf'


def write_config(state: layout_mod.CloudState, cstate: paths_mod.ComputeState,
                 paths: paths_mod.ComputePaths,
                 transport_url: str) -> pathlib.Path:
    data = paths.service_dir('neutron')
    etc = paths.config_dir('neutron')
    return common.write_config(config_file(paths), {
        'DEFAULT': {
            'debug': 'false', 'use_stderr': 'true',
            'core_plugin': 'ml2', 'service_plugins': 'ovn-router',
            'auth_strategy': 'keystone', 'transport_url': transport_url,
            'state_path': str(data), 'api_workers': '1',
            'rpc_workers': '0', 'rpc_state_report_workers': '0',
            'api_paste_config': str(etc / 'api-paste.ini'),
            'notify_nova_on_port_status_changes': 'true',
            'notify_nova_on_port_data_changes': 'true',
        },
        'database': {'connection': mariadb.url(paths, DATABASE)},
        'keystone_authtoken': common.authtoken(state, 'neutron'),
        'nova': common.service_auth(state, 'neutron'),
        'placement': common.service_auth(state, 'neutron'),
        'oslo_concurrency': {'lock_path': str(data / 'locks')},
        'ml2': {'mechanism_drivers': 'ovn', 'type_drivers': 'flat,geneve',
                'tenant_network_types': 'geneve',
                'extension_drivers': 'port_security'},
        'ml2_type_flat': {'flat_networks': ','.join(
            physnet for physnet, _, _ in cstate.bridges())},
        'ml2_type_geneve': {'vni_ranges': '1:65536',
                            'max_header_size': '38'},
        'ovn': {'ovn_nb_connection': network.connection(paths, 'nb'),
                'ovn_sb_connection': network.connection(paths, 'sb'),
                'ovn_metadata_enabled': 'false',
                'dns_servers': cstate.gateway},
    })


def copy_paste_config(paths: paths_mod.ComputePaths) -> None:
    shutil.copyfile(pathlib.Path(sys.prefix) / 'etc' / 'neutron' /
                    'api-paste.ini',
                    paths.config_dir('neutron') / 'api-paste.ini')


def setup_commands(paths: paths_mod.ComputePaths) -> list[common.Command]:
    """One-time commands: the database schema."""
    return [[common.tool('neutron-db-manage'), '--config-file',
             config_file(paths), 'upgrade', 'heads']]


def daemon(cstate: paths_mod.ComputeState,
           paths: paths_mod.ComputePaths) -> supervision.Program:
    return common.wsgi_daemon(
        'neutron', 'neutron.wsgi.api:application', cstate.ports['neutron'],
        paths, {'OS_NEUTRON_CONFIG_DIR': str(paths.config_dir('neutron')),
                'OS_NEUTRON_CONFIG_FILES': 'neutron.conf',
                'ASGI_WORKERS': '1'})


def endpoint_url(cstate: paths_mod.ComputeState) -> str:
    return common.url(cstate.ports['neutron'])
