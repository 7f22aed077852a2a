"""Cinder's volume API (host loopback), with no volume service behind it.

Trove 26 lists an instance's volumes in the block-storage API when it
deletes the instance, whatever ``volume_support`` says
(``trove/instance/models.py``, ``_delete_resources``): without a volume
endpoint in the catalog every delete fails after the server is gone.  The
compute cloud therefore runs the real cinder-api (database on the layer's
MariaDB) so those calls are answered; it has no cinder-volume or
scheduler, so nothing can create a volume and Trove keeps
``volume_support = False``.

cinder-api reads its configuration with oslo.config from the default
places only (no --config-file through the WSGI loader), so the process
gets a HOME of its own whose ``~/.cinder/cinder.conf`` is this layer's.
"""

import pathlib
import sys

from trovestack.cloud.compute import common
from trovestack.cloud.compute import mariadb

SERVICE_TYPE = 'volumev3'
DATABASE = 'cinder'


def home(paths):
    return paths.service_dir('cinder') / 'home'


def config_file(paths):
    return home(paths) / '.cinder' / 'cinder.conf'


def _paste_config():
    return pathlib.Path(sys.prefix) / 'etc' / 'cinder' / 'api-paste.ini'


def write_config(state, cstate, paths, transport_url):
    config_file(paths).parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    return common.write_config(config_file(paths), {
        'DEFAULT': {
            'debug': 'false', 'use_stderr': 'true',
            'auth_strategy': 'keystone',
            'transport_url': transport_url,
            'api_paste_config': str(_paste_config()),
            'state_path': str(paths.service_dir('cinder')),
            'enabled_backends': '',
            'my_ip': '127.0.0.1',
        },
        'database': {'connection': mariadb.url(paths, DATABASE)},
        'keystone_authtoken': common.authtoken(state, 'cinder'),
        'oslo_concurrency': {
            'lock_path': str(paths.service_dir('cinder') / 'locks')},
    })


def setup_commands(paths):
    """One-time commands: the database schema."""
    return [[common.tool('cinder-manage'), '--config-file',
             config_file(paths), 'db', 'sync']]


def daemon(cstate, paths):
    return common.wsgi_daemon(
        'cinder', 'cinder.wsgi.api:application', cstate.ports['cinder'],
        paths, {'HOME': str(home(paths))})


def endpoint_url(cstate):
    return common.url(cstate.ports['cinder'], '/v3/%(project_id)s')
