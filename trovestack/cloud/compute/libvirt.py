"""libvirtd and virtlogd inside the cloud's namespace (qemu guests inherit it).

They use libvirt's standard system paths (``/run/libvirt``), so one
compute cloud per machine can run; :func:`check_free` refuses to start
when another libvirtd already runs.
"""

import pathlib

from trovestack.cloud.compute import daemons

LIBVIRT_SOCKET = pathlib.Path('/run/libvirt/libvirt-sock')
VIRTLOGD_SOCKET = pathlib.Path('/run/libvirt/virtlogd-sock')
URI = 'qemu:///system'


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


def forget_domains(prefix):
    """Destroy and undefine the guests whose names start with prefix
    (libvirt keeps definitions in /etc/libvirt beyond the cloud)."""
    listing = daemons.run(['virsh', '-c', URI, 'list', '--all', '--name'],
                          check=False)
    for name in listing.stdout.split():
        if name.startswith(prefix):
            daemons.run(['virsh', '-c', URI, 'destroy', name], check=False)
            daemons.run(['virsh', '-c', URI, 'undefine', name], check=False)
