"""libvirtd and virtlogd inside the cloud's namespace (qemu guests inherit it).

They use libvirt's standard system paths (``/run/libvirt``), so one
compute cloud per machine can run; :func:`check_free` refuses to start
when another libvirtd already runs.
"""

import logging
import pathlib
import time

from trovestack.cloud.compute import daemons

LOG = logging.getLogger(__name__)

LIBVIRT_SOCKET = pathlib.Path('/run/libvirt/libvirt-sock')
VIRTLOGD_SOCKET = pathlib.Path('/run/libvirt/virtlogd-sock')
URI = 'qemu:///system'
# How long guests get to shut down cleanly (their database container
# stopped, file systems synced) before they are destroyed; measured: a
# Trove guest under TCG powers off in ~25 s.  libvirt-guests waits 300 s.
SHUTDOWN_TIMEOUT = 120.0


def check_free(runner):
    """Raise if a libvirtd that is not ours answers on the system socket."""
    if runner.pid('libvirtd') is None and daemons.unix_socket_answers(
            LIBVIRT_SOCKET):
        raise daemons.ComputeError(
            f'another libvirtd answers on {LIBVIRT_SOCKET}; the compute '
            'cloud needs libvirt for itself: stop it first')


def daemons_in_order(paths) -> list[daemons.Daemon]:
    for binary, package in (('/usr/sbin/libvirtd', 'libvirt-daemon'),
                            ('/usr/bin/qemu-system-x86_64',
                             'qemu-system-x86')):
        if not pathlib.Path(binary).exists():
            raise daemons.ComputeError(
                f'{binary} not found: install the Debian package {package}')
    ns = paths.namespace
    return [
        daemons.Daemon('virtlogd', ['/usr/sbin/virtlogd'], ns,
                       lambda: daemons.unix_socket_answers(VIRTLOGD_SOCKET)),
        daemons.Daemon('libvirtd', ['/usr/sbin/libvirtd'], ns,
                       lambda: daemons.unix_socket_answers(LIBVIRT_SOCKET)),
    ]


def _domains(prefix, *, running_only):
    listing = daemons.run(['virsh', '-c', URI, 'list', '--name',
                           *(() if running_only else ('--all',))],
                          check=False)
    return [name for name in listing.stdout.split()
            if name.startswith(prefix)]


def shut_down_domains(prefix, timeout=SHUTDOWN_TIMEOUT,
                      poll_interval=1.0) -> list[str]:
    """Ask the running guests whose names start with prefix to power off
    (ACPI, as a host's shutdown does), and wait up to ``timeout`` for them;
    returns their names. Those still running are left for
    :func:`forget_domains` to destroy."""
    names = _domains(prefix, running_only=True)
    for name in names:
        daemons.run(['virsh', '-c', URI, 'shutdown', name], check=False)
    deadline = time.monotonic() + timeout
    while _domains(prefix, running_only=True):
        if time.monotonic() >= deadline:
            LOG.warning('guests still running after %d s, destroyed: %s',
                        timeout, ', '.join(_domains(prefix,
                                                    running_only=True)))
            break
        time.sleep(poll_interval)
    return names


def forget_domains(prefix):
    """Destroy and undefine the guests whose names start with prefix
    (libvirt keeps definitions in /etc/libvirt beyond the cloud)."""
    for name in _domains(prefix, running_only=False):
        daemons.run(['virsh', '-c', URI, 'destroy', name], check=False)
        daemons.run(['virsh', '-c', URI, 'undefine', name], check=False)
