"""A one-node Ceph cluster in the devstack container: what Cinder's volume
service stores volumes in there.

devstack's own Cinder backends need what this kernel lacks (LVM needs
device-mapper, its targets iSCSI); upstream gets Ceph from
devstack-plugin-ceph, which is out of reach offline.  So the container
gets what a CI node with a Ceph cluster beside it would have: Debian's
Ceph packages (from the staged repository), a monitor, a manager and an
OSD whose BlueStore is a sparse file, run by Debian's own units
(``ceph-mon@a``, ``ceph-mgr@x``, ``ceph-osd@0``), every messenger on the
container's loopback, cephx on.  devstack then configures Cinder's RBD
backend itself (lib/cinder_backends/ceph, from :func:`localrc_lines`);
qemu opens the volumes with librbd, its key in a libvirt secret that
devstack's ``local.sh`` hook defines (:func:`local_sh`) once libvirt runs.

The same cluster as the compute cloud's (common.ceph_cluster).
"""

import pathlib
import uuid
from collections.abc import Sequence

from trovestack.common import ceph_cluster
from trovestack.common import ini
from trovestack.common import waiting
from trovestack.common.errors import UserError
from trovestack.devstack_env import container
from trovestack.devstack_env import packages

PACKAGES = packages.LATER_PACKAGES['c-vol']
CONF = '/etc/ceph/ceph.conf'
POOL = ceph_cluster.POOL
CLIENT = ceph_cluster.CLIENT
MON_ADDRESS = '127.0.0.1:6789'
MON_DATA = '/var/lib/ceph/mon/ceph-a'
OSD_DATA = '/var/lib/ceph/osd/ceph-0'
MGR_DATA = '/var/lib/ceph/mgr/ceph-x'
UNITS = ('ceph-mon@a', 'ceph-osd@0', 'ceph-mgr@x')
# The daemons' and Cinder's entities with their capabilities, and where
# each keyring goes (Debian's defaults: $<kind>_data/keyring, and
# /etc/ceph/ceph.<name>.keyring for clients).
KEYRINGS = {'osd.0': f'{OSD_DATA}/keyring', 'mgr.x': f'{MGR_DATA}/keyring',
            f'client.{CLIENT}': f'/etc/ceph/ceph.client.{CLIENT}.keyring'}
SETUP_TIMEOUT = 180.0


class CephError(UserError):
    """The container's Ceph cluster could not be set up."""


def fsid(machine: str) -> str:
    """The cluster's id: fixed for a container name."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL,
                          f'trovestack-devstack/{machine}'))


def secret_uuid(machine: str) -> str:
    """The libvirt secret of client.cinder's key (CINDER_CEPH_UUID)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f'{fsid(machine)}/{CLIENT}'))


def config_text(machine: str) -> str:
    return ini.render({
        'global': {
            'fsid': fsid(machine),
            'mon_host': f'v1:{MON_ADDRESS}',
            'mon_initial_members': 'a',
            'public_addr': MON_ADDRESS.split(':')[0],
            'cluster_addr': MON_ADDRESS.split(':')[0],
            **{f'auth_{who}_required': 'cephx'
               for who in ('cluster', 'service', 'client')},
            **ceph_cluster.ONE_NODE,
        },
        'osd': dict(ceph_cluster.ONE_OSD),
    })


def localrc_lines(machine: str) -> list[str]:
    """What makes devstack's lib/cinder use this cluster."""
    return [
        'CINDER_ENABLED_BACKENDS=ceph:ceph',
        f'CEPH_CONF_FILE={CONF}',
        f'CINDER_CEPH_POOL={POOL}',
        f'CINDER_CEPH_USER={CLIENT}',
        f'CINDER_CEPH_UUID={secret_uuid(machine)}',
    ]


def local_sh(machine: str) -> str:
    """devstack's local.sh (run by stack.sh once its services are up):
    client.cinder's key into a libvirt secret, for qemu's librbd.  The key
    goes through a file (never on a command line or in the trace)."""
    uid = secret_uuid(machine)
    return f'''#!/bin/bash
# Written by "trovestack devstack up": the libvirt secret qemu opens
# Cinder's Ceph volumes with (doc/devstack-plugin.md, Volumes).
set -eu
set +o xtrace
xml=$(mktemp)
key=$(mktemp)
trap 'rm -f "$xml" "$key"' EXIT
cat > "$xml" <<EOF
<secret ephemeral='no' private='no'>
  <uuid>{uid}</uuid>
  <usage type='ceph'><name>client.{CLIENT} secret</name></usage>
</secret>
EOF
sudo virsh -q secret-define --file "$xml" >/dev/null
sudo ceph --conf {CONF} auth get-key client.{CLIENT} > "$key"
sudo virsh -q secret-set-value --secret {uid} --file "$key" >/dev/null
echo "libvirt secret {uid} holds client.{CLIENT}'s key"
'''


def _root(record: container.Record, argv: Sequence[str], what: str,
          timeout: float = 600.0) -> str:
    done = container.run(record, argv, capture_output=True, text=True,
                         timeout=timeout)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise CephError(f'ceph in the container: {what} failed '
                        f'(exit {done.returncode}): {" | ".join(tail)}')
    return str(done.stdout)


def _ceph(record: container.Record, *args: str) -> str:
    """A cluster command, tried again while a just-started monitor refuses
    it (the commands used here are idempotent); its output, which may be
    empty (``-o`` writes a file)."""
    argv = ['ceph', '--conf', CONF, '--connect-timeout', '5', *args]
    what = f'ceph {" ".join(args[:3])}'
    return waiting.retry(what, lambda: _root(record, argv, what, 60),
                         SETUP_TIMEOUT, retry_on=CephError, interval=2.0)


def set_up(record: container.Record, rootfs: pathlib.Path) -> str:
    """Install, make and start the cluster, its pool and Cinder's key in
    the booted container (``rootfs``: its root on the host); a summary."""
    _root(record, ['apt-get', 'update', '-q'], 'apt-get update')
    _root(record, ['env', 'DEBIAN_FRONTEND=noninteractive', 'apt-get',
                   'install', '-y', '-q', *PACKAGES], 'apt-get install')
    conf = rootfs / CONF.lstrip('/')
    conf.parent.mkdir(parents=True, exist_ok=True)
    conf.write_text(config_text(record.machine))
    if not (rootfs / MON_DATA.lstrip('/') / 'store.db').is_dir():
        _make_monitor(record)
    _root(record, ['systemctl', 'enable', '--now', '-q', UNITS[0]],
          'start the monitor')
    for entity, path in KEYRINGS.items():
        kind = entity.split('.', 1)[0]
        caps = ceph_cluster.CAPS[entity]
        _root(record, ['install', '-d', '-o', 'ceph', '-g', 'ceph',
                       str(pathlib.PurePath(path).parent)], f'{kind} dir')
        _ceph(record, 'auth', 'get-or-create', entity, *caps, '-o', path)
    # The daemons run as ceph; Cinder as the stack user.
    _root(record, ['chown', '-R', 'ceph:ceph', '/var/lib/ceph'], 'chown')
    client_keyring = KEYRINGS[f'client.{CLIENT}']
    _root(record, ['chown', 'stack:stack', client_keyring], 'chown')
    _root(record, ['chmod', '600', client_keyring], 'chmod')
    osd_uuid = ceph_cluster.osd_uuid(fsid(record.machine))
    osd_id = _ceph(record, 'osd', 'create', osd_uuid).strip()
    if osd_id != '0':
        raise CephError(f'ceph gave the OSD the id {osd_id}, not 0')
    if not (rootfs / OSD_DATA.lstrip('/') / 'ready').exists():
        _root(record, ['ceph-osd', '--conf', CONF, '-i', '0', '--mkfs',
                       '--osd-uuid', osd_uuid, '--setuser', 'ceph',
                       '--setgroup', 'ceph'], 'ceph-osd --mkfs')
    _ceph(record, *ceph_cluster.crush_add(record.machine))
    _root(record, ['systemctl', 'enable', '--now', '-q', *UNITS[1:]],
          'start the OSD and the manager')
    for args in ceph_cluster.POOL_COMMANDS:
        _ceph(record, *args)
    waiting.wait_for('the OSD up and the pool usable', lambda: _usable(
        record), SETUP_TIMEOUT, interval=2.0)
    return (f'{", ".join(UNITS)} on {MON_ADDRESS}; pool {POOL}, '
            f'client.{CLIENT}')


def _make_monitor(record: container.Record) -> None:
    """The monitor's store with mon. and client.admin's keys (the latter
    in /etc/ceph/ceph.client.admin.keyring, root's)."""
    seed = '/var/lib/ceph/tmp/mkfs.keyring'
    admin = '/etc/ceph/ceph.client.admin.keyring'
    monmap = '/var/lib/ceph/tmp/monmap'
    steps = [
        ['install', '-d', '-o', 'ceph', '-g', 'ceph', '/var/lib/ceph/tmp',
         MON_DATA],
        *ceph_cluster.monitor_keyring_commands(admin, seed),
        ['chmod', '600', admin, seed],
        ceph_cluster.monmap_command(fsid(record.machine), MON_ADDRESS,
                                    monmap),
        ['ceph-mon', '--conf', CONF, '--mkfs', '-i', 'a', '--monmap',
         monmap, '--keyring', seed],
        ['chown', '-R', 'ceph:ceph', '/var/lib/ceph'],
        ['rm', '-f', seed, monmap],
    ]
    for argv in steps:
        _root(record, argv, ' '.join(argv[:2]))


def _usable(record: container.Record) -> bool:
    """An rbd listing of the pool answers: the OSD serves it."""
    done = container.run(record, ['timeout', '20', 'rbd', '--conf', CONF,
                                  'ls', POOL], capture_output=True,
                         text=True)
    return done.returncode == 0
