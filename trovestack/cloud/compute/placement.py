"""Placement: its configuration, database and API server (host loopback)."""

from trovestack.cloud.compute import common
from trovestack.cloud.compute import mariadb

SERVICE_TYPE = 'placement'
DATABASE = 'placement'


def config_file(paths):
    return paths.config_dir('placement') / 'placement.conf'


def write_config(state, cstate, paths):
    return common.write_config(config_file(paths), {
        'DEFAULT': {'debug': 'false', 'use_stderr': 'true'},
        'api': {'auth_strategy': 'keystone'},
        'keystone_authtoken': common.authtoken(state, 'placement'),
        'placement_database': {
            'connection': mariadb.url(paths, DATABASE)},
    })


def setup_commands(paths):
    """One-time commands: the database schema."""
    return [[common.tool('placement-manage'), '--config-file',
             config_file(paths), 'db', 'sync']]


def daemon(cstate, paths):
    return common.wsgi_daemon(
        'placement', 'placement.wsgi.api:application',
        cstate.ports['placement'], paths,
        {'OS_PLACEMENT_CONFIG_DIR': str(paths.config_dir('placement'))})


def endpoint_url(cstate):
    return common.url(cstate.ports['placement'])
