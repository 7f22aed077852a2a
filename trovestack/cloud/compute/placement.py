"""Placement: its configuration, database and API server (host loopback)."""

import pathlib

from trovestack.cloud import layout as layout_mod
from trovestack.cloud import supervision
from trovestack.cloud.compute import common
from trovestack.cloud.compute import mariadb
from trovestack.cloud.compute import paths as paths_mod

SERVICE_TYPE = 'placement'
DATABASE = 'placement'


def config_file(paths: paths_mod.ComputePaths) -> pathlib.Path:
    return paths.config_dir('placement') / 'placement.conf'


def write_config(state: layout_mod.CloudState, cstate: paths_mod.ComputeState,
                 paths: paths_mod.ComputePaths) -> pathlib.Path:
    return common.write_config(config_file(paths), {
        'DEFAULT': {'debug': 'false', 'use_stderr': 'true'},
        'api': {'auth_strategy': 'keystone'},
        'keystone_authtoken': common.authtoken(state, 'placement'),
        'placement_database': {
            'connection': mariadb.url(paths, DATABASE)},
    })


def setup_commands(paths: paths_mod.ComputePaths) -> list[common.Command]:
    """One-time commands: the database schema."""
    return [[common.tool('placement-manage'), '--config-file',
             config_file(paths), 'db', 'sync']]


def daemon(cstate: paths_mod.ComputeState,
           paths: paths_mod.ComputePaths) -> supervision.Program:
    return common.wsgi_daemon(
        'placement', 'placement.wsgi.api:application',
        cstate.ports['placement'], paths,
        {'OS_PLACEMENT_CONFIG_DIR': str(paths.config_dir('placement'))})


def endpoint_url(cstate: paths_mod.ComputeState) -> str:
    return common.url(cstate.ports['placement'])
