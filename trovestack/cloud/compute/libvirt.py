"""libvirtd and virtlogd inside the cloud's namespace (qemu guests inherit it).

They use libvirt's standard system paths (``/run/libvirt``), so one
compute cloud per machine can run; :func:`check_free` refuses to start
when another libvirtd already runs.
"""

import base64
import logging
import pathlib

import psutil

from trovestack.cloud import supervision
from trovestack.cloud.compute import ceph
from trovestack.cloud.compute import daemons
from trovestack.cloud.compute import paths as paths_mod
from trovestack.common import waiting

LOG = logging.getLogger(__name__)

LIBVIRT_SOCKET = pathlib.Path('/run/libvirt/libvirt-sock')
VIRTLOGD_SOCKET = pathlib.Path('/run/libvirt/virtlogd-sock')
URI = 'qemu:///system'
SECRETS_DIR = pathlib.Path('/etc/libvirt/secrets')
# How long guests get to shut down cleanly (their database container
# stopped, file systems synced) before they are destroyed; measured: a
# Trove guest under TCG powers off in ~25 s.  libvirt-guests waits 300 s.
SHUTDOWN_TIMEOUT = 120.0
KVM_DEVICE = pathlib.Path('/dev/kvm')
QEMU_CONF = pathlib.Path('/etc/libvirt/qemu.conf')
LIBVIRTD = '/usr/sbin/libvirtd'
# libvirtd starts through this script (sh -c SCRIPT name [SOURCE TARGET]...
# LIBVIRTD) in a mount namespace of its own: each SOURCE is bound over its
# TARGET there, nowhere else.
_BOUND = ('set -e; while [ "$#" -gt 1 ]; do mount --bind "$1" "$2"; '
          'shift 2; done; exec "$1"')
# The cloud's qemu.conf, seen by its libvirtd only.  Without a device
# namespace per guest: libvirt would carry the /dev/kvm mask into it by
# moving the mount, which it can not do for a file.
_QEMU_CONF = """\
# Written by trovestack for the compute cloud's libvirtd (bound over
# /etc/libvirt/qemu.conf in its own mount namespace only).
namespaces = [ ]
"""


def check_free(runner: supervision.Supervisor) -> None:
    """Raise if a libvirtd that is not ours answers on the system socket."""
    if runner.pid('libvirtd') is None and daemons.unix_socket_answers(
            LIBVIRT_SOCKET):
        raise daemons.ComputeError(
            f'another libvirtd answers on {LIBVIRT_SOCKET}; the compute '
            'cloud needs libvirt for itself: stop it first')


def daemons_in_order(
        paths: paths_mod.ComputePaths) -> list[supervision.Program]:
    for binary, package in (('/usr/sbin/libvirtd', 'libvirt-daemon'),
                            ('/usr/bin/qemu-system-x86_64',
                             'qemu-system-x86')):
        if not pathlib.Path(binary).exists():
            raise daemons.ComputeError(
                f'{binary} not found: install the Debian package {package}')
    ns = paths.namespace
    return [
        supervision.Program('virtlogd', ['/usr/sbin/virtlogd'], ns,
                       lambda: daemons.unix_socket_answers(VIRTLOGD_SOCKET)),
        supervision.Program('libvirtd', libvirtd_argv(paths), ns,
                       lambda: daemons.unix_socket_answers(LIBVIRT_SOCKET)),
    ]


def write_config(paths: paths_mod.ComputePaths,
                 kvm_device: pathlib.Path = KVM_DEVICE) -> None:
    """The files libvirtd's command line binds (:func:`libvirtd_argv`):
    the cloud's qemu.conf and, where the host has ``/dev/kvm``, the mask
    put over it."""
    if not QEMU_CONF.exists():
        return
    paths.root.mkdir(parents=True, exist_ok=True)
    _conf(paths).write_text(_QEMU_CONF)
    if kvm_device.exists():
        mask = _mask(paths)
        mask.touch(mode=0o000, exist_ok=True)
        mask.chmod(0o000)


def libvirtd_argv(paths: paths_mod.ComputePaths,
                  kvm_device: pathlib.Path = KVM_DEVICE) -> list[str]:
    """libvirtd's command line: in a mount namespace of its own, with the
    cloud's qemu.conf and, where the host has ``/dev/kvm``, that device
    masked (the files :func:`write_config` writes).

    The cloud's guests run under TCG (nova's ``virt_type = qemu``), and
    libvirt must agree that KVM is not there: it probes qemu's
    capabilities as root (KVM found) but judges its cache by whether the
    qemu user may open ``/dev/kvm``; where it may not (here the device
    belongs to another group, and KVM makes no progress anyway), every
    capabilities lookup finds the cache stale and probes qemu again, twice
    per lookup, ~2 s each: measured 70 s of each guest's definition
    (``virsh define`` 72 s, 0.3 s with the mask), and a probe on each of
    nova's periodic resource updates.  The mask is an empty file of mode 0
    (root may open it, qemu's KVM set-up then fails and it falls back to
    TCG; the qemu user may not), so the probe and the check agree and
    libvirt keeps its cache."""
    if not QEMU_CONF.exists():
        return [LIBVIRTD]
    binds = [str(_conf(paths)), str(QEMU_CONF)]
    if kvm_device.exists():
        binds += [str(_mask(paths)), str(kvm_device)]
    return ['unshare', '--mount', '--propagation', 'private', '--',
            'sh', '-c', _BOUND, 'libvirtd', *binds, LIBVIRTD]


def _conf(paths: paths_mod.ComputePaths) -> pathlib.Path:
    return paths.root / 'qemu.conf'


def _mask(paths: paths_mod.ComputePaths) -> pathlib.Path:
    return paths.root / 'no-kvm'


def _domains(prefix: str, *, running_only: bool) -> list[str]:
    listing = daemons.run(['virsh', '-c', URI, 'list', '--name',
                           *(() if running_only else ('--all',))],
                          check=False)
    return [name for name in listing.stdout.split()
            if name.startswith(prefix)]


def shut_down_domains(prefix: str, timeout: float = SHUTDOWN_TIMEOUT,
                      poll_interval: float = 1.0) -> list[str]:
    """Ask the running guests whose names start with prefix to power off
    (ACPI, as a host's shutdown does), and wait up to ``timeout`` for them;
    returns their names. Those still running are left for
    :func:`forget_domains` to destroy."""
    names = _domains(prefix, running_only=True)
    for name in names:
        daemons.run(['virsh', '-c', URI, 'shutdown', name], check=False)
    try:
        waiting.wait_for('guests powered off',
                         lambda: not _domains(prefix, running_only=True),
                         timeout, interval=poll_interval)
    except waiting.WaitTimeout:
        LOG.warning('guests still running after %d s, destroyed: %s',
                    timeout, ', '.join(_domains(prefix, running_only=True)))
    return names


def guest_rss_kib(prefix: str) -> tuple[int, int]:
    """(how many guests whose names start with prefix run, their qemu
    processes' resident memory in KiB): qemu runs detached from libvirtd
    (its parent is init), so no daemon's process tree holds it."""
    count = total = 0
    for proc in psutil.process_iter(['name', 'cmdline', 'memory_info']):
        info = proc.info
        if not (info['name'] or '').startswith('qemu-system') or \
                not info['memory_info']:
            continue
        if any(arg.startswith(f'guest={prefix}')
               for arg in info['cmdline'] or ()):
            count += 1
            total += info['memory_info'].rss // 1024
    return count, total


def forget_domains(prefix: str) -> None:
    """Destroy and undefine the guests whose names start with prefix
    (libvirt keeps definitions in /etc/libvirt beyond the cloud)."""
    for name in _domains(prefix, running_only=False):
        daemons.run(['virsh', '-c', URI, 'destroy', name], check=False)
        daemons.run(['virsh', '-c', URI, 'undefine', name], check=False)


def define_ceph_secret(cstate: paths_mod.ComputeState,
                       paths: paths_mod.ComputePaths) -> None:
    """The libvirt secret qemu authenticates to Ceph with (client.cinder's
    key; its uuid is what Cinder's RBD driver hands nova), set through
    libvirt's API so the key is never on a command line.  Nothing when
    the cluster has no cephx."""
    if not ceph.cephx(cstate):
        return
    import libvirt as api

    uuid = ceph.secret_uuid(paths)
    xml = (f"<secret ephemeral='no' private='yes'><uuid>{uuid}</uuid>"
           f"<usage type='ceph'><name>{paths.namespace} client."
           f"{ceph.CLIENT} secret</name></usage></secret>")
    conn = api.open(URI)
    try:
        secret = conn.secretDefineXML(xml)
        secret.setValue(base64.b64decode(ceph.client_key(paths)))
    finally:
        conn.close()


def forget_ceph_secret(paths: paths_mod.ComputePaths) -> None:
    """Remove the cloud's Ceph secret from libvirt (kept in /etc/libvirt
    beyond the cloud otherwise): through libvirtd when it runs, else its
    files."""
    uuid = ceph.secret_uuid(paths)
    if daemons.unix_socket_answers(LIBVIRT_SOCKET):
        daemons.run(['virsh', '-c', URI, 'secret-undefine', uuid],
                    check=False)
    for stored in SECRETS_DIR.glob(f'{uuid}.*'):
        stored.unlink(missing_ok=True)
