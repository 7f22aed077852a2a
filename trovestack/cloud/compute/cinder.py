"""Cinder: the volume API, scheduler and a volume service on Ceph RBD.

Trove keeps each instance's data on a Cinder volume (``volume_support``)
and trove-tempest-plugin's scenarios always ask for one; Trove 26 also
lists an instance's volumes when it deletes it, whatever
``volume_support`` says.  Volumes live in the layer's one-node Ceph
cluster (:mod:`ceph`): cinder-volume's RBD driver creates them, qemu
opens them with librbd, no kernel attach is involved.

cinder-api reads its configuration with oslo.config from the default
places only (no --config-file through the WSGI loader), so the process
gets a HOME of its own whose ``~/.cinder/cinder.conf`` is this layer's;
the scheduler and volume service read the same file.  The RBD driver
imports Ceph's Python bindings, which only Debian ships (python3-rados,
python3-rbd): the volume service gets a directory with just those two
modules on its PYTHONPATH.
"""

import pathlib
import sys

from trovestack.cloud import layout as layout_mod
from trovestack.cloud import supervision
from trovestack.cloud.compute import ceph
from trovestack.cloud.compute import common
from trovestack.cloud.compute import daemons
from trovestack.cloud.compute import mariadb
from trovestack.cloud.compute import paths as paths_mod

SERVICE_TYPE = 'volumev3'
DATABASE = 'cinder'
BACKEND = 'ceph'
HOST = paths_mod.COMPUTE_HOST
SCHEDULER, VOLUME = 'cinder-scheduler', 'cinder-volume'
CEPH_BINDINGS = ('rados', 'rbd')
DIST_PACKAGES = pathlib.Path('/usr/lib/python3/dist-packages')


def home(paths: paths_mod.ComputePaths) -> pathlib.Path:
    return paths.service_dir('cinder') / 'home'


def config_file(paths: paths_mod.ComputePaths) -> pathlib.Path:
    return home(paths) / '.cinder' / 'cinder.conf'


def _paste_config() -> pathlib.Path:
    return pathlib.Path(sys.prefix) / 'etc' / 'cinder' / 'api-paste.ini'


def write_config(state: layout_mod.CloudState, cstate: paths_mod.ComputeState,
                 paths: paths_mod.ComputePaths,
                 transport_url: str) -> pathlib.Path:
    config_file(paths).parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    # With cephx the driver connects as client.cinder (its keyring is
    # found through ceph.conf) and tells nova which libvirt secret holds
    # the key for qemu.
    auth = {'rbd_user': ceph.CLIENT,
            'rbd_secret_uuid': ceph.secret_uuid(paths)} if ceph.cephx(
                cstate) else {}
    return common.write_config(config_file(paths), {
        'DEFAULT': {
            'debug': 'false', 'use_stderr': 'true',
            'auth_strategy': 'keystone',
            'transport_url': transport_url,
            'api_paste_config': str(_paste_config()),
            'state_path': str(paths.service_dir('cinder')),
            'enabled_backends': BACKEND,
            'default_volume_type': '__DEFAULT__',
            'my_ip': '127.0.0.1',
            'host': HOST,
        },
        BACKEND: {
            'volume_driver': 'cinder.volume.drivers.rbd.RBDDriver',
            'volume_backend_name': BACKEND,
            'rbd_pool': ceph.POOL,
            'rbd_ceph_conf': str(ceph.config_file(paths)),
            'rbd_flatten_volume_from_snapshot': 'false',
            'report_discard_supported': 'true',
            **auth,
        },
        'database': {'connection': mariadb.url(paths, DATABASE)},
        'keystone_authtoken': common.authtoken(state, 'cinder'),
        'oslo_concurrency': {
            'lock_path': str(paths.service_dir('cinder') / 'locks')},
    })


def setup_commands(paths: paths_mod.ComputePaths) -> list[common.Command]:
    """One-time commands: the database schema."""
    return [[common.tool('cinder-manage'), '--config-file',
             config_file(paths), 'db', 'sync']]


def daemon(cstate: paths_mod.ComputeState,
           paths: paths_mod.ComputePaths) -> supervision.Program:
    return common.wsgi_daemon(
        'cinder', 'cinder.wsgi.api:application', cstate.ports['cinder'],
        paths, {'HOME': str(home(paths))})


def bindings_dir(paths: paths_mod.ComputePaths) -> pathlib.Path:
    """A directory holding only Ceph's Python bindings (see the module
    docstring); [ComputeError] when they do not fit this Python."""
    target = paths.service_dir('cinder') / 'ceph-bindings'
    target.mkdir(mode=0o700, parents=True, exist_ok=True)
    tag = f'cpython-{sys.version_info.major}{sys.version_info.minor}'
    for module in CEPH_BINDINGS:
        found = sorted(DIST_PACKAGES.glob(f'{module}.{tag}-*.so'))
        if not found:
            raise daemons.ComputeError(
                f'no {module} module for this Python ({tag}) in '
                f'{DIST_PACKAGES}: install the Debian package '
                f'python3-{module} (the venv must use the same Python '
                'minor version as Debian)')
        link = target / found[0].name
        if not link.is_symlink():
            link.symlink_to(found[0])
    return target


def service_daemons(
        paths: paths_mod.ComputePaths) -> list[supervision.Program]:
    """The scheduler and the volume service (after the API)."""
    env = {'HOME': str(home(paths))}
    volume_env = {**env, 'PYTHONPATH': str(bindings_dir(paths))}
    conf = ['--config-file', str(config_file(paths))]
    return [
        supervision.Program(SCHEDULER,
                            [common.tool('cinder-scheduler'), *conf],
                            None, None, env),
        supervision.Program(VOLUME, [common.tool('cinder-volume'), *conf],
                            None, None, volume_env),
    ]


def endpoint_url(cstate: paths_mod.ComputeState) -> str:
    return common.url(cstate.ports['cinder'], '/v3/%(project_id)s')
