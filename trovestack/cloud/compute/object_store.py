"""The compute cloud's object storage: Ceph's RADOS gateway with the Swift
API, on the cluster the layer already runs, authenticating with Keystone.

It listens on host loopback (the control plane and Trove's API reach it
there) and the forwarder offers the same port on the management network's
gateway inside the namespace, for guests: Trove's backups go from the
guest straight to object storage.  The catalog lists it as
``object-store``.
"""

import pathlib
from typing import Any

from trovestack.cloud import configs
from trovestack.cloud import layout as layout_mod
from trovestack.cloud import processes
from trovestack.cloud import supervision
from trovestack.cloud.compute import ceph
from trovestack.cloud.compute import paths as paths_mod
from trovestack.common import files

NAME = 'radosgw'
PORT = NAME                       # its name in the layer's ports
USER = 'swift'                    # its Keystone user (service project)
SERVICE_TYPE = 'object-store'
ENTITY = ceph.RGW                 # its Ceph identity
ACCOUNT_PATH = '/swift/v1/AUTH_'
# Threads of its HTTP front end and RADOS handles: one machine's tests,
# not a storage cluster's clients (the default 512 threads hold memory).
THREADS = 16


def data_dir(paths: paths_mod.ComputePaths) -> pathlib.Path:
    return ceph.directory(paths) / 'rgw'


def password_file(paths: paths_mod.ComputePaths) -> pathlib.Path:
    """Its Keystone password (rgw_keystone_admin_password_path), 0600."""
    return paths.config_dir('ceph') / 'rgw-keystone-password'


def endpoint_url(cstate: paths_mod.ComputeState) -> str:
    """The catalog's URL: the caller's project is the Swift account."""
    return (f'http://127.0.0.1:{cstate.ports[PORT]}{ACCOUNT_PATH}'
            '$(project_id)s')


def guest_url(cstate: paths_mod.ComputeState) -> str:
    """The same service as guests reach it (the forwarder's address on
    the management network), ending in ``AUTH_`` as Trove's swift_url."""
    return f'http://{cstate.gateway}:{cstate.ports[PORT]}{ACCOUNT_PATH}'


def config_section(state: layout_mod.CloudState,
                   cstate: paths_mod.ComputeState,
                   paths: paths_mod.ComputePaths) -> dict[str, dict[str, Any]]:
    """Its section of ceph.conf (``state``: the control plane's)."""
    # Keystone's root: the gateway adds the API version itself.
    keystone = configs.identity_url(state).removesuffix('/v3')
    return {ENTITY: {
        'rgw_frontends': f'beast endpoint=127.0.0.1:{cstate.ports[PORT]}',
        'rgw_data': str(data_dir(paths)),
        'rgw_enable_apis': 'swift, swift_auth, admin',
        'rgw_swift_account_in_url': 'true',
        'rgw_keystone_url': keystone,
        'rgw_keystone_api_version': '3',
        'rgw_keystone_admin_user': USER,
        'rgw_keystone_admin_password_path': str(password_file(paths)),
        'rgw_keystone_admin_project': 'service',
        'rgw_keystone_admin_domain': 'Default',
        'rgw_keystone_accepted_roles': 'member, admin',
        'rgw_keystone_implicit_tenants': 'true',
        'rgw_keystone_verify_ssl': 'false',
        'rgw_thread_pool_size': str(THREADS),
        'rgw_enable_usage_log': 'false',
    }}


def write_password(state: layout_mod.CloudState,
                   paths: paths_mod.ComputePaths) -> None:
    """The Keystone password file, written only when it changed."""
    path = password_file(paths)
    if not path.exists() or path.read_text() != state.service_password:
        files.write_atomic(path, state.service_password, mode=0o600)


def program(cstate: paths_mod.ComputeState,
            paths: paths_mod.ComputePaths) -> supervision.Program:
    url = f'http://127.0.0.1:{cstate.ports[PORT]}/'
    return supervision.Program(
        NAME, ['radosgw', '-f', '--conf', str(ceph.config_file(paths)),
               '-n', ENTITY],
        None, lambda: processes.http_answers(url))
