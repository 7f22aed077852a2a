"""A one-node Ceph cluster: the block storage behind Cinder's RBD driver.

Trove creates every instance's data volume in Cinder when
``volume_support`` is on, and trove-tempest-plugin's scenarios always ask
for one.  This machine kind has no device-mapper, iSCSI or NFS in its
kernel (so no LVM driver and no kernel attach), but qemu's own librbd
client needs none of them: nova's libvirt driver hands the guest an
``rbd`` network disk.  So the layer runs one monitor, one manager (it
feeds the pool statistics Cinder's scheduler needs) and one OSD whose
BlueStore lives in a sparse file, all on host loopback, authentication
off (nothing but this machine can reach loopback).

qemu runs inside the cloud's namespace (libvirtd does): the forwarder
mirrors the monitor's port and the OSD's small port range there.
"""

import json
import subprocess
import time
import uuid

from trovestack.cloud.compute import daemons
from trovestack.cloud.compute import paths as paths_mod

MON, OSD, MGR = 'ceph-mon', 'ceph-osd', 'ceph-mgr'
POOL = 'volumes'
OSD_PORTS = paths_mod.PORT_RANGES['ceph-osd']
BLOCK_SIZE = 20 * 1024 ** 3


def directory(paths):
    return paths.service_dir('ceph')


def config_file(paths):
    return paths.config_dir('ceph') / 'ceph.conf'


def fsid(paths) -> str:
    """The cluster id: fixed for a state directory."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, str(paths.cloud_root)))


def mon_address(cstate) -> str:
    return f'127.0.0.1:{cstate.ports["ceph-mon"]}'


def osd_ports(cstate) -> list[int]:
    base = cstate.ports['ceph-osd']
    return list(range(base, base + OSD_PORTS))


def write_config(cstate, paths):
    top = directory(paths)
    osd = osd_ports(cstate)
    text = '\n'.join([
        '[global]',
        f'fsid = {fsid(paths)}',
        f'mon_host = v1:{mon_address(cstate)}',
        'mon_initial_members = a',
        'public_addr = 127.0.0.1',
        'ms_bind_msgr2 = false',
        *(f'auth_{who}_required = none'
          for who in ('cluster', 'service', 'client')),
        'osd_pool_default_size = 1',
        'osd_pool_default_min_size = 1',
        'mon_allow_pool_size_one = true',
        'mon_warn_on_pool_no_redundancy = false',
        'osd_crush_chooseleaf_type = 0',
        # The monitor stops below mon_data_avail_crit percent free: a
        # shared build host's disk is often fuller than a Ceph node's.
        'mon_data_avail_warn = 2',
        'mon_data_avail_crit = 1',
        f'run_dir = {paths.run_dir}',
        f'admin_socket = {paths.run_dir}/$name.asok',
        'log_to_file = false',
        'log_to_stderr = true',
        'err_to_stderr = true',
        'keyring = /dev/null',
        f'mon_data = {top}/mon-$id',
        f'osd_data = {top}/osd-$id',
        f'mgr_data = {top}/mgr-$id',
        '',
        '[osd]',
        # No monitor commands of the OSD's own while it starts (its crush
        # location and device class): a monitor that has just started
        # refused one with 'wrong fsid' and the OSD exited; initialise_osd
        # puts it in the crush map, retried.
        'osd_crush_update_on_start = false',
        'osd_class_update_on_start = false',
        'osd_objectstore = bluestore',
        f'bluestore_block_path = {top}/osd-$id/block.file',
        'bluestore_block_create = true',
        f'bluestore_block_size = {BLOCK_SIZE}',
        'bluestore_cache_autotune = false',
        'bluestore_cache_size = 134217728',
        'osd_memory_target = 939524096',
        f'ms_bind_port_min = {osd[0]}',
        f'ms_bind_port_max = {osd[-1]}',
        '',
    ])
    path = config_file(paths)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    # ceph-mgr does not make its data directory itself.
    (top / 'mgr-x').mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
    return path


def _ceph(paths, *args, check=True):
    return daemons.run(['ceph', '--conf', config_file(paths),
                        '--connect-timeout', '5', *args], check=check)


# A monitor that has just started can refuse a command for a while ("Error
# EPERM: problem getting command descriptions from mon." was seen right
# after an 'osd create' it had answered): the set-up commands, all
# idempotent, are tried again until this many seconds have passed.
SETUP_RETRY_SECONDS = 60


def _ceph_setup(paths, *args):
    """A set-up command of the cluster, tried again while the monitor
    refuses it; the last error when it never takes it."""
    deadline = time.monotonic() + SETUP_RETRY_SECONDS
    while True:
        try:
            return _ceph(paths, *args)
        except daemons.ComputeError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(2)


def initialise_monitor(cstate, paths):
    """The monitor's store, made once."""
    store = directory(paths) / 'mon-a'
    if (store / 'store.db').is_dir():
        return
    store.mkdir(mode=0o700, parents=True, exist_ok=True)
    monmap = directory(paths) / 'monmap'
    daemons.run(['monmaptool', '--create', '--clobber', '--fsid',
                 fsid(paths), '--addv', 'a', f'[v1:{mon_address(cstate)}]',
                 monmap])
    daemons.run(['ceph-mon', '--conf', config_file(paths), '--mkfs', '-i',
                 'a', '--monmap', monmap])


def initialise_osd(paths):
    """OSD 0 (in the monitor's map and on its sparse file), made once; the
    monitor must be up."""
    store = directory(paths) / 'osd-0'
    osd_uuid = str(uuid.uuid5(uuid.NAMESPACE_URL, f'{fsid(paths)}/osd-0'))
    # Same uuid, same id: a re-run after a crash finds osd 0 again.
    osd_id = _ceph_setup(paths, 'osd', 'create', osd_uuid).stdout.strip()
    if osd_id != '0':
        raise daemons.ComputeError(f'ceph gave the OSD id {osd_id}, not 0')
    if not (store / 'ready').exists():
        store.mkdir(mode=0o700, parents=True, exist_ok=True)
        daemons.run(['ceph-osd', '--conf', config_file(paths), '-i', '0',
                     '--mkfs', '--osd-uuid', osd_uuid])
    _ceph_setup(paths, 'osd', 'crush', 'add', 'osd.0', '1.0',
                'host=trovestack', 'root=default')


def create_pool(paths):
    """The pool Cinder's volumes go to (idempotent)."""
    _ceph_setup(paths, 'osd', 'pool', 'create', POOL, '8', '8')
    _ceph_setup(paths, 'osd', 'pool', 'application', 'enable', POOL, 'rbd')


def _json(paths, *args):
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


def _osd_up(paths) -> bool:
    dump = _json(paths, 'osd', 'dump')
    return bool(dump) and any(osd.get('up') for osd in dump.get('osds', []))


def _mgr_available(paths) -> bool:
    stat = _json(paths, 'mgr', 'stat')
    return bool(stat) and bool(stat.get('available'))


def daemons_in_order(paths) -> list[daemons.Daemon]:
    conf = str(config_file(paths))
    return [
        daemons.Daemon(MON, ['ceph-mon', '-f', '--conf', conf, '-i', 'a'],
                       None, lambda: daemons.unix_socket_answers(
                           paths.run_dir / 'mon.a.asok')),
        daemons.Daemon(OSD, ['ceph-osd', '-f', '--conf', conf, '-i', '0'],
                       None, lambda: _osd_up(paths)),
        daemons.Daemon(MGR, ['ceph-mgr', '-f', '--conf', conf, '-i', 'x'],
                       None, lambda: _mgr_available(paths)),
    ]
