"""What a one-node Ceph cluster for Cinder looks like, wherever it runs:
the compute cloud's (cloud.compute.ceph) and a devstack container's
(devstack_env.ceph): its options, pool, users and their capabilities, and
the commands that make it (each side runs them its own way)."""

import os
import uuid

POOL = 'volumes'
CLIENT = 'cinder'          # the user Cinder's RBD driver and qemu use
RGW = 'client.rgw.trovestack'  # the RADOS gateway (the compute cloud's)
CAPS = {
    'osd.0': ['mon', 'allow profile osd', 'mgr', 'allow profile osd',
              'osd', 'allow *'],
    'mgr.x': ['mon', 'allow profile mgr', 'osd', 'allow *', 'mds',
              'allow *'],
    f'client.{CLIENT}': ['mon', 'profile rbd', 'osd',
                         f'profile rbd pool={POOL}', 'mgr',
                         f'profile rbd pool={POOL}'],
    RGW: ['mon', 'allow rw', 'osd', 'allow rwx', 'mgr', 'allow rw'],
}
BLOCK_SIZE = 20 * 1024 ** 3

# [global] options of a cluster with one monitor and one OSD.
ONE_NODE = {
    'ms_bind_msgr2': 'false',
    'osd_pool_default_size': '1',
    'osd_pool_default_min_size': '1',
    'mon_allow_pool_size_one': 'true',
    'mon_warn_on_pool_no_redundancy': 'false',
    'osd_crush_chooseleaf_type': '0',
    # One OSD holds every pool (the RADOS gateway makes six): few
    # placement groups each, under mon_max_pg_per_osd.
    'osd_pool_default_pg_num': '8',
    'osd_pool_default_pgp_num': '8',
    # The monitor stops below mon_data_avail_crit percent free: a shared
    # build host's disk is often fuller than a Ceph node's.
    'mon_data_avail_warn': '2',
    'mon_data_avail_crit': '1',
}
# [osd] options of its OSD: BlueStore in a sparse file, a small cache.
ONE_OSD = {
    # No monitor commands of the OSD's own while it starts (its crush
    # location and device class): a monitor that has just started refused
    # one with 'wrong fsid' and the OSD exited; the set-up puts it in the
    # crush map itself, retried.
    'osd_crush_update_on_start': 'false',
    'osd_class_update_on_start': 'false',
    'osd_objectstore': 'bluestore',
    'bluestore_block_create': 'true',
    'bluestore_block_size': str(BLOCK_SIZE),
    'bluestore_cache_autotune': 'false',
    'bluestore_cache_size': '134217728',
    'osd_memory_target': '939524096',
}

# -- the commands that make it ----------------------------------------------

Path = str | os.PathLike[str]


def monitor_keyring_commands(admin: Path, seed: Path) -> list[list[str]]:
    """ceph-authtool: client.admin's new key in ``admin``, mon.'s in
    ``seed`` with client.admin's imported (``ceph-mon --mkfs --keyring``)."""
    return [
        ['ceph-authtool', '--create-keyring', str(admin), '--gen-key', '-n',
         'client.admin', '--cap', 'mon', 'allow *', '--cap', 'osd',
         'allow *', '--cap', 'mgr', 'allow *', '--cap', 'mds', 'allow *'],
        ['ceph-authtool', '--create-keyring', str(seed), '--gen-key', '-n',
         'mon.', '--cap', 'mon', 'allow *'],
        ['ceph-authtool', str(seed), '--import-keyring', str(admin)],
    ]


def monmap_command(fsid: str, mon_address: str, monmap: Path) -> list[str]:
    """monmaptool: the map of the one monitor ``a`` (messenger v1)."""
    return ['monmaptool', '--create', '--clobber', '--fsid', fsid, '--addv',
            'a', f'[v1:{mon_address}]', str(monmap)]


def osd_uuid(fsid: str) -> str:
    """OSD 0's uuid: the same for a cluster, so that ``osd create`` run
    again (after a crash) finds osd 0 again."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f'{fsid}/osd-0'))


def crush_add(host: str) -> list[str]:
    """``ceph`` arguments putting osd.0 into the crush map (the OSD does
    not itself: osd_crush_update_on_start is off)."""
    return ['osd', 'crush', 'add', 'osd.0', '1.0', f'host={host}',
            'root=default']


# ``ceph`` arguments making Cinder's pool (idempotent).
POOL_COMMANDS = (
    ['osd', 'pool', 'create', POOL, '8', '8'],
    ['osd', 'pool', 'application', 'enable', POOL, 'rbd'],
)
