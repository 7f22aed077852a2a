"""Checks of the build host, made before any expensive step."""

import os
import pathlib
import platform
import shutil
from collections.abc import Iterable
from collections.abc import Mapping

from trovestack.images.guest import errors

# Command -> Debian package that provides it.
REQUIRED_TOOLS = {
    'qemu-img': 'qemu-utils',
    'debootstrap': 'debootstrap',
    'sgdisk': 'gdisk',
    'partx': 'util-linux',
    'losetup': 'util-linux',
    'mkfs.ext4': 'e2fsprogs',
}
# Only needed when the kernel has device-mapper; otherwise the shims stand in.
DEVICE_MAPPER_TOOLS = {
    'kpartx': 'kpartx',
    'sudo': 'sudo',
}
SBIN_DIRS = ('/usr/local/sbin', '/usr/sbin', '/sbin')
GIB = 1024 ** 3
# platform.machine() -> the architecture name diskimage-builder (and
# Debian) use for it.
DIB_ARCHES = {
    'x86_64': 'amd64',
    'aarch64': 'arm64',
    'ppc64le': 'ppc64el',
    's390x': 's390x',
}


def host_arch() -> str:
    """This host's architecture as diskimage-builder names it."""
    machine = platform.machine()
    return DIB_ARCHES.get(machine, machine)


def machine_of(arch: str) -> str:
    """platform.machine()'s name for a diskimage-builder architecture."""
    for machine, dib_arch in DIB_ARCHES.items():
        if dib_arch == arch:
            return machine
    return arch


def search_path() -> str:
    """PATH plus the sbin directories, where several of the tools live."""
    parts = os.environ.get('PATH', '').split(os.pathsep)
    return os.pathsep.join(parts + [d for d in SBIN_DIRS if d not in parts])


def has_device_mapper(proc_devices: str = '/proc/devices') -> bool:
    try:
        text = pathlib.Path(proc_devices).read_text()
    except OSError:
        return False
    return any(line.split()[-1:] == ['device-mapper']
               for line in text.splitlines())


def missing_tools(tools: Mapping[str, str],
                  path: str | None = None) -> list[tuple[str, str]]:
    """(command, package) pairs for the commands not found on ``path``."""
    path = path or search_path()
    return [(cmd, pkg) for cmd, pkg in sorted(tools.items())
            if shutil.which(cmd, path=path) is None]


def check_tools(device_mapper: bool, extra: Mapping[str, str] | None = None,
                path: str | None = None) -> None:
    tools = dict(REQUIRED_TOOLS)
    if device_mapper:
        tools.update(DEVICE_MAPPER_TOOLS)
    tools.update(extra or {})
    missing = missing_tools(tools, path=path)
    if missing:
        commands = ', '.join(cmd for cmd, _ in missing)
        packages = ' '.join(sorted({pkg for _, pkg in missing}))
        raise errors.BuildError(
            'Missing build tools: %s; install them with: apt-get install %s'
            % (commands, packages))


def check_root(euid: int | None = None) -> None:
    euid = os.geteuid() if euid is None else euid
    if euid != 0:
        raise errors.BuildError(
            'trove-image-builder must run as root: diskimage-builder needs '
            'chroot, mounts and loop devices')


def check_free_space(paths: Iterable[pathlib.Path | str],
                     min_bytes: int) -> None:
    for path in paths:
        existing = pathlib.Path(path)
        while not existing.exists():
            existing = existing.parent
        free = shutil.disk_usage(existing).free
        if free < min_bytes:
            raise errors.BuildError(
                'Not enough disk space in %s: %.1f GiB free, need %.1f GiB'
                % (existing, free / GIB, min_bytes / GIB))
