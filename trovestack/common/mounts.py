"""Mounts and loop devices below a directory: find them, take them down,
and remove the directory only when nothing is mounted below it any more.

A build that chroots (diskimage-builder, mmdebstrap) mounts tmpfs, proc,
sysfs and binds of the host's ``/dev`` under its work directory, and
attaches loop devices to image files there.  A build killed half-way
leaves them; ``rm -rf`` of such a directory would walk into the host's
devices.  :func:`teardown` undoes them (deepest mount first, loop devices
detached once what was mounted from them is gone) and
:func:`remove_tree` deletes the directory, refusing while anything is
still mounted below it.

Only what lies below the given directory is touched: the mount table is
``/proc/self/mountinfo`` and loop devices are matched by their backing
file's path (``/sys/block/loop*/loop/backing_file``).
"""

import ctypes
import dataclasses
import logging
import os
import pathlib
import re
import shutil
import subprocess
import time

LOG = logging.getLogger(__name__)

MOUNTINFO = '/proc/self/mountinfo'
SYS_BLOCK = '/sys/block'
DEV_MAPPER = '/dev/mapper'
# umount2(2) flags
MNT_DETACH = 2
UMOUNT_NOFOLLOW = 8
# How long a busy mount (a loop device closing, a process exiting) gets
# before it is detached lazily.
BUSY_WAIT = 5.0

_ESCAPE = re.compile(r'\\([0-7]{3})')
_DELETED = (' (deleted)', '//deleted')


class StillMounted(OSError):
    """Something is still mounted below a directory that was to go."""


@dataclasses.dataclass(frozen=True)
class Mount:
    """One line of /proc/self/mountinfo."""

    mount_id: int
    parent_id: int
    path: str
    fstype: str
    source: str


@dataclasses.dataclass(frozen=True)
class LoopDevice:
    """An attached loop device and what hangs off it."""

    name: str                 # loop3
    backing_file: str
    partitions: tuple = ()    # loop3p1, ...
    holders: tuple = ()       # device-mapper names (kpartx maps)

    @property
    def device(self) -> str:
        return f'/dev/{self.name}'


@dataclasses.dataclass
class Teardown:
    """What :func:`teardown` did below a directory."""

    unmounted: list = dataclasses.field(default_factory=list)
    detached: list = dataclasses.field(default_factory=list)
    remaining: list = dataclasses.field(default_factory=list)

    def summary(self) -> str:
        parts = []
        if self.unmounted:
            parts.append(f'{len(self.unmounted)} mount(s) taken down')
        if self.detached:
            parts.append(f'{len(self.detached)} loop device(s) detached')
        if self.remaining:
            parts.append(f'{len(self.remaining)} mount(s) left: '
                         + ', '.join(self.remaining))
        return '; '.join(parts)


def _unescape(field: str) -> str:
    return _ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), field)


def _strip_deleted(path: str) -> str:
    for suffix in _DELETED:
        if path.endswith(suffix):
            return path[:-len(suffix)]
    return path


def parse_mountinfo(text: str) -> list[Mount]:
    """[Mount] of a mountinfo table, in its order (parents first)."""
    found = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 7 or '-' not in fields[6:]:
            continue
        dash = fields.index('-', 6)
        found.append(Mount(
            mount_id=int(fields[0]), parent_id=int(fields[1]),
            path=_strip_deleted(_unescape(fields[4])),
            fstype=fields[dash + 1] if len(fields) > dash + 1 else '',
            source=(_unescape(fields[dash + 2])
                    if len(fields) > dash + 2 else '')))
    return found


def mounts(mountinfo: str = MOUNTINFO) -> list[Mount]:
    with open(mountinfo) as table:
        return parse_mountinfo(table.read())


def canonical(path: pathlib.Path | str) -> str:
    """The absolute path with symlinks resolved, as the kernel shows it."""
    return os.path.realpath(os.path.abspath(path))


def is_under(path: str, root: str) -> bool:
    """``path`` is ``root`` or below it (both canonical strings)."""
    if root == '/':
        return True
    return path == root or path.startswith(root + '/')


def mounts_under(root: pathlib.Path | str,
                 mountinfo: str = MOUNTINFO) -> list[Mount]:
    """The mounts at or below ``root``, in mount table order."""
    root = canonical(root)
    return [m for m in mounts(mountinfo) if is_under(m.path, root)]


def _read(path: pathlib.Path | str) -> str:
    try:
        return pathlib.Path(path).read_text().strip()
    except OSError:
        return ''


def loop_devices(sys_block: str = SYS_BLOCK) -> list[LoopDevice]:
    """Every attached loop device ([LoopDevice])."""
    found = []
    for block in sorted(pathlib.Path(sys_block).glob('loop*')):
        backing = _read(block / 'loop' / 'backing_file')
        if not backing:
            continue
        partitions = tuple(sorted(p.name for p in block.glob(block.name
                                                             + 'p*')))
        holders = []
        for holder in sorted((block / 'holders').glob('*')):
            holders.append(_read(holder / 'dm' / 'name') or holder.name)
        found.append(LoopDevice(block.name, _strip_deleted(backing),
                                partitions, tuple(holders)))
    return found


def loops_under(root: pathlib.Path | str,
                sys_block: str = SYS_BLOCK) -> list[LoopDevice]:
    """Loop devices whose backing file lies below ``root``."""
    root = canonical(root)
    return [loop for loop in loop_devices(sys_block)
            if is_under(loop.backing_file, root)]


_libc = None


def _umount2(path: str, flags: int) -> int:
    """umount2(2) (never follows a symlink at the end of ``path``);
    0 or the errno."""
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    if _libc.umount2(os.fsencode(path), flags | UMOUNT_NOFOLLOW) == 0:
        return 0
    return ctypes.get_errno()


def unmount(path: str, lazy: bool = False) -> bool:
    """Unmount the top mount at ``path``; True when it went."""
    error = _umount2(path, MNT_DETACH if lazy else 0)
    if error:
        LOG.debug('umount %s%s: %s', '-l ' if lazy else '', path,
                  os.strerror(error))
    return error == 0


def _deepest_first(found: list[Mount]) -> list[Mount]:
    order = {m.mount_id: i for i, m in enumerate(found)}
    return sorted(found, key=lambda m: (m.path.count('/'), order[m.mount_id]),
                  reverse=True)


def _unmount_all(found: list[Mount], lazy: bool, done: list[str]) -> None:
    """One pass over ``found``, deepest first."""
    for mount in _deepest_first(found):
        if unmount(mount.path, lazy=lazy):
            done.append(mount.path)


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, check=False)


def detach(loop: LoopDevice, dev_mapper: str = DEV_MAPPER) -> bool:
    """Drop a loop device's device-mapper maps (kpartx), its partition
    links (the dib shims' /dev/mapper/loopNpM symlinks), then the device."""
    for holder in loop.holders:
        _run(['dmsetup', 'remove', '--retry', holder])
    mapper = pathlib.Path(dev_mapper)
    for partition in loop.partitions:
        link = mapper / partition
        if link.is_symlink() and os.readlink(link) == f'/dev/{partition}':
            link.unlink()
    if loop.partitions:
        _run(['partx', '-d', loop.device])
    result = _run(['losetup', '-d', loop.device])
    if result.returncode != 0:
        LOG.warning('losetup -d %s failed: %s', loop.device,
                    result.stderr.strip())
        return False
    return True


def _refuse_top(root: str) -> None:
    if root.count('/') < 2:
        raise ValueError(f'refusing to tear down {root!r}: not a work '
                         'directory')


def teardown(root: pathlib.Path | str, *, mountinfo: str = MOUNTINFO,
             sys_block: str = SYS_BLOCK,
             busy_wait: float = BUSY_WAIT) -> Teardown:
    """Unmount everything at or below ``root`` and detach the loop devices
    backed by files below it.  Returns a :class:`Teardown`.

    Order: the loop devices are listed first (their backing paths still
    resolve), then every mount goes deepest first (a plain unmount), then
    the loop devices are detached (what was mounted from them is gone by
    then), then what was still busy is unmounted again, lazily when it
    stays busy for ``busy_wait`` seconds.
    """
    root = canonical(root)
    _refuse_top(root)
    result = Teardown()
    loops = loops_under(root, sys_block)
    _unmount_all(mounts_under(root, mountinfo), False, result.unmounted)
    for loop in loops:
        if detach(loop):
            result.detached.append(loop.device)
    deadline = time.monotonic() + busy_wait
    while True:
        left = mounts_under(root, mountinfo)
        if not left:
            break
        lazy = time.monotonic() >= deadline
        _unmount_all(left, lazy, result.unmounted)
        after = {m.mount_id for m in mounts_under(root, mountinfo)}
        if after == {m.mount_id for m in left}:
            if lazy:
                break       # nothing more can be done
            time.sleep(0.2)
    # Loops attached to files of a mount that only now went.
    for loop in loops_under(root, sys_block):
        if detach(loop):
            result.detached.append(loop.device)
    result.remaining = [m.path for m in mounts_under(root, mountinfo)]
    return result


def remove_tree(root: pathlib.Path | str, *,
                mountinfo: str = MOUNTINFO) -> None:
    """Delete ``root`` and everything in it, refusing (StillMounted) while
    anything is mounted at or below it: the files of a mounted file system
    (a bind of the host's /dev) are never reached."""
    root = canonical(root)
    _refuse_top(root)
    left = mounts_under(root, mountinfo)
    if left:
        raise StillMounted(
            f'not removing {root}: still mounted below it: '
            + ', '.join(m.path for m in left))
    shutil.rmtree(root, ignore_errors=True)
    if os.path.lexists(root):
        # What ignore_errors hid (permissions, a file system that came and
        # went): say it rather than leave the directory silently.
        raise OSError(f'could not remove {root} completely')
