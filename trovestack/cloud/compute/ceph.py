"""A one-node Ceph cluster: the block storage behind Cinder's RBD driver.

Trove creates every instance's data volume in Cinder when
``volume_support`` is on, and trove-tempest-plugin's scenarios always ask
for one.  This machine kind has no device-mapper, iSCSI or NFS in its
kernel (so no LVM driver and no kernel attach), but qemu's own librbd
client needs none of them: nova's libvirt driver hands the guest an
``rbd`` network disk.  So the layer runs one monitor, one manager (it
feeds the pool statistics Cinder's scheduler needs) and one OSD whose
BlueStore lives in a sparse file, every messenger on host loopback, with
cephx: each daemon and client has its own key, in keyrings only their
owner can read; Cinder and qemu use ``client.cinder`` (qemu gets its key
from a libvirt secret, ``libvirt.define_ceph_secret``).  A cloud whose
cluster was made before cephx (no ``cephx`` in its state's ``set_up``)
keeps authentication off until ``cloud up --fresh``.

qemu runs inside the cloud's namespace (libvirtd does): the forwarder
mirrors the monitor's port and the OSD's small port range there.
"""

import json
import pathlib
import subprocess
import uuid
from typing import Any

from trovestack.cloud import supervision
from trovestack.cloud.compute import daemons
from trovestack.cloud.compute import paths as paths_mod
from trovestack.common import ceph_cluster
from trovestack.common import ini
from trovestack.common import waiting

MON, OSD, MGR = 'ceph-mon', 'ceph-osd', 'ceph-mgr'
POOL, CLIENT, RGW = ceph_cluster.POOL, ceph_cluster.CLIENT, ceph_cluster.RGW
CAPS = ceph_cluster.CAPS
ONE_NODE, ONE_OSD = ceph_cluster.ONE_NODE, ceph_cluster.ONE_OSD
OSD_PORTS = paths_mod.PORT_RANGES['ceph-osd']


def directory(paths: paths_mod.ComputePaths) -> pathlib.Path:
    return paths.service_dir('ceph')


def config_file(paths: paths_mod.ComputePaths) -> pathlib.Path:
    return paths.config_dir('ceph') / 'ceph.conf'


def fsid(paths: paths_mod.ComputePaths) -> str:
    """The cluster id: fixed for a state directory."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, str(paths.cloud_root)))


def cephx(cstate: paths_mod.ComputeState) -> bool:
    """Whether the cluster uses cephx: every cluster made since it came,
    not one made before (its monitor knows no keys)."""
    return 'ceph' not in cstate.set_up or 'cephx' in cstate.set_up


def keyring(paths: paths_mod.ComputePaths, entity: str) -> pathlib.Path:
    """The keyring file of a client entity (client.admin, client.cinder)
    or daemon (mon., osd.0, mgr.x)."""
    top = directory(paths)
    if entity == 'mon.':
        return top / 'mon-a' / 'keyring'
    if entity.startswith(('osd.', 'mgr.')):
        kind, name = entity.split('.', 1)
        return top / f'{kind}-{name}' / 'keyring'
    return paths.config_dir('ceph') / f'ceph.{entity}.keyring'


def secret_uuid(paths: paths_mod.ComputePaths) -> str:
    """The libvirt secret holding client.cinder's key (fixed per cloud)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f'{fsid(paths)}/{CLIENT}'))


def mon_address(cstate: paths_mod.ComputeState) -> str:
    return f'127.0.0.1:{cstate.ports["ceph-mon"]}'


def osd_ports(cstate: paths_mod.ComputeState) -> list[int]:
    base = cstate.ports['ceph-osd']
    return list(range(base, base + OSD_PORTS))


def write_config(
        cstate: paths_mod.ComputeState, paths: paths_mod.ComputePaths,
        sections: dict[str, dict[str, Any]] | None = None) -> pathlib.Path:
    """ceph.conf; ``sections``: further ones (a client's)."""
    top = directory(paths)
    osd = osd_ports(cstate)
    auth = 'cephx' if cephx(cstate) else 'none'
    text = ini.render({
        'global': {
            'fsid': fsid(paths),
            'mon_host': f'v1:{mon_address(cstate)}',
            'mon_initial_members': 'a',
            # Every messenger on loopback: the OSD's cluster and heartbeat
            # messengers bind to the cluster address, which is otherwise
            # any.
            'public_addr': '127.0.0.1',
            'cluster_addr': '127.0.0.1',
            **{f'auth_{who}_required': auth
               for who in ('cluster', 'service', 'client')},
            **ONE_NODE,
            'run_dir': str(paths.run_dir),
            'admin_socket': f'{paths.run_dir}/$name.asok',
            'log_to_file': 'false',
            'log_to_stderr': 'true',
            'err_to_stderr': 'true',
            # Clients' keyrings (client.admin, client.cinder) here; the
            # daemons' in their data directories.
            'keyring': f'{paths.config_dir("ceph")}/ceph.$name.keyring',
            'mon_data': f'{top}/mon-$id',
            'osd_data': f'{top}/osd-$id',
            'mgr_data': f'{top}/mgr-$id',
        },
        'mon': {'keyring': f'{top}/mon-$id/keyring'},
        'mgr': {'keyring': f'{top}/mgr-$id/keyring'},
        'osd': {
            'keyring': f'{top}/osd-$id/keyring',
            **ONE_OSD,
            'bluestore_block_path': f'{top}/osd-$id/block.file',
            'ms_bind_port_min': str(osd[0]),
            'ms_bind_port_max': str(osd[-1]),
        },
        **(sections or {}),
    })
    path = config_file(paths)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    # ceph-mgr does not make its data directory itself.
    (top / 'mgr-x').mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
    return path


def _ceph(paths: paths_mod.ComputePaths, *args: str | pathlib.Path,
          check: bool = True) -> subprocess.CompletedProcess[str]:
    return daemons.run(['ceph', '--conf', config_file(paths),
                        '--connect-timeout', '5', *args], check=check)


# A monitor that has just started can refuse a command for a while ("Error
# EPERM: problem getting command descriptions from mon." was seen right
# after an 'osd create' it had answered): the set-up commands, all
# idempotent, are tried again until this many seconds have passed.
SETUP_RETRY_SECONDS = 60


def _ceph_setup(paths: paths_mod.ComputePaths,
                *args: str) -> subprocess.CompletedProcess[str]:
    """A set-up command of the cluster, tried again while the monitor
    refuses it; the last error when it never takes it."""
    return waiting.retry(f'ceph {" ".join(args[:2])}',
                         lambda: _ceph(paths, *args), SETUP_RETRY_SECONDS,
                         retry_on=daemons.ComputeError, interval=2.0)


def initialise_monitor(cstate: paths_mod.ComputeState,
                       paths: paths_mod.ComputePaths) -> None:
    """The monitor's store, made once (with cephx: the monitor's and
    client.admin's keys in it, client.admin's keyring for our commands)."""
    store = directory(paths) / 'mon-a'
    if (store / 'store.db').is_dir():
        return
    store.mkdir(mode=0o700, parents=True, exist_ok=True)
    monmap = directory(paths) / 'monmap'
    daemons.run(ceph_cluster.monmap_command(fsid(paths), mon_address(cstate),
                                            monmap))
    mkfs: list[str | pathlib.Path] = [
        'ceph-mon', '--conf', config_file(paths), '--mkfs', '-i', 'a',
        '--monmap', monmap]
    if cephx(cstate):
        mkfs += ['--keyring', _monitor_keyring(paths)]
    daemons.run(mkfs)


def _monitor_keyring(paths: paths_mod.ComputePaths) -> pathlib.Path:
    """A keyring with new keys for mon. and client.admin (the latter also
    written where our ``ceph`` commands read it); mode 0600."""
    admin = keyring(paths, 'client.admin')
    seed = directory(paths) / 'mkfs.keyring'
    for path in (admin, seed):
        path.unlink(missing_ok=True)
    for argv in ceph_cluster.monitor_keyring_commands(admin, seed):
        daemons.run(argv)
    for path in (admin, seed):
        path.chmod(0o600)
    return seed


def create_keys(cstate: paths_mod.ComputeState,
                paths: paths_mod.ComputePaths) -> None:
    """The daemons' and Cinder's keys (idempotent: get-or-create), each in
    its keyring, mode 0600; nothing without cephx."""
    if not cephx(cstate):
        return
    for entity, caps in CAPS.items():
        path = keyring(paths, entity)
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        _ceph_setup(paths, 'auth', 'get-or-create', entity, *caps, '-o',
                    str(path))
        path.chmod(0o600)


def client_key(paths: paths_mod.ComputePaths) -> str:
    """client.cinder's secret key (for libvirt's secret; never printed)."""
    return _ceph(paths, 'auth', 'get-key', f'client.{CLIENT}').stdout.strip()


def initialise_osd(paths: paths_mod.ComputePaths) -> None:
    """OSD 0 (in the monitor's map and on its sparse file), made once; the
    monitor must be up."""
    store = directory(paths) / 'osd-0'
    osd_uuid = ceph_cluster.osd_uuid(fsid(paths))
    osd_id = _ceph_setup(paths, 'osd', 'create', osd_uuid).stdout.strip()
    if osd_id != '0':
        raise daemons.ComputeError(f'ceph gave the OSD id {osd_id}, not 0')
    store.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not (store / 'ready').exists():
        daemons.run(['ceph-osd', '--conf', config_file(paths), '-i', '0',
                     '--mkfs', '--osd-uuid', osd_uuid])
    _ceph_setup(paths, *ceph_cluster.crush_add('trovestack'))


def create_pool(paths: paths_mod.ComputePaths) -> None:
    """The pool Cinder's volumes go to (idempotent)."""
    for args in ceph_cluster.POOL_COMMANDS:
        _ceph_setup(paths, *args)


def _json(paths: paths_mod.ComputePaths, *args: str) -> Any:
    try:
        result = _ceph(paths, *args, '--format', 'json', check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    if result.returncode != 0:
        return None
    try:
        return json.loads(result.stdout)
    except ValueError:
        return None


def _osd_up(paths: paths_mod.ComputePaths) -> bool:
    dump = _json(paths, 'osd', 'dump')
    return bool(dump) and any(osd.get('up') for osd in dump.get('osds', []))


def _mgr_available(paths: paths_mod.ComputePaths) -> bool:
    stat = _json(paths, 'mgr', 'stat')
    return bool(stat) and bool(stat.get('available'))


def daemons_in_order(
        paths: paths_mod.ComputePaths) -> list[supervision.Program]:
    conf = str(config_file(paths))
    return [
        supervision.Program(MON, ['ceph-mon', '-f', '--conf', conf, '-i', 'a'],
                       None, lambda: daemons.unix_socket_answers(
                           paths.run_dir / 'mon.a.asok')),
        supervision.Program(OSD, ['ceph-osd', '-f', '--conf', conf, '-i', '0'],
                       None, lambda: _osd_up(paths)),
        supervision.Program(MGR, ['ceph-mgr', '-f', '--conf', conf, '-i', 'x'],
                       None, lambda: _mgr_available(paths)),
    ]
