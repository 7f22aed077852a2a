"""Work directories owned by a build, and the sweep after killed builds.

A build that mounts (diskimage-builder's chroot, mmdebstrap) works in a
directory made by :func:`owned`: ``<parent>/<prefix><pid>-<random>``.
Its owner, the build's process, is recorded as pid *and* process start
time (a reused pid is never taken for the build) in :data:`OWNER_FILE`
inside it and in a registry entry (:func:`registry_dir`), so a sweep finds
it wherever it is.  The build passes :func:`marker_env` to what it runs,
so every process of the build can be found again.

Leaving the ``with owned(...)`` block (success, error, Ctrl-C, or SIGTERM
turned into an exception by the caller) stops the build's processes,
unmounts and detaches what is below the directory
(:func:`trovestack.common.mounts.teardown`) and removes it.  A build
killed with SIGKILL cannot do that: :func:`sweep`, run by the next build
and by ``trovestack clean``, does it for every directory whose owner is
gone, and never touches one whose owner runs.
"""

import contextlib
import dataclasses
import glob
import hashlib
import json
import logging
import os
import pathlib
import signal
import stat
import tempfile
import threading
from collections.abc import Iterable
from collections.abc import Iterator

import psutil

from trovestack.common import files
from trovestack.common import mounts
from trovestack.common import results

LOG = logging.getLogger(__name__)

OWNER_FILE = '.trovestack-owner.json'
# Set in the environment of everything a build runs: its processes are
# found (and stopped) by it.
MARKER_ENV = 'TROVESTACK_BUILD_WORKDIR'
# Environment variables naming a work directory: ours, diskimage-builder's
# (exported to its hooks and chroot) and mmdebstrap's temporary directory.
DIR_ENV = (MARKER_ENV, 'TMP_BUILD_DIR', 'TMP_IMAGE_DIR', 'TMPDIR')
# Process start times read at different moments can differ by clock
# adjustments; a pid reused within a second of the owner's start is
# impossible (the owner ran the build in between).
START_TOLERANCE = 1.0
KILL_WAIT = 10.0

DELETED = results.DELETED
WOULD_DELETE = results.WOULD_DELETE
KEPT = results.KEPT
FAILED = results.FAILED


def registry_dir() -> pathlib.Path:
    """Where every owned work directory of this user is listed:
    $TROVESTACK_WORKDIR_REGISTRY, else trovestack-workdirs-<uid> in the
    temporary directory (next to the build locks)."""
    override = os.environ.get('TROVESTACK_WORKDIR_REGISTRY')
    if override:
        return pathlib.Path(override)
    return pathlib.Path(tempfile.gettempdir(),
                        f'trovestack-workdirs-{os.getuid()}')


@dataclasses.dataclass(frozen=True)
class Owner:
    """The process that owns a work directory."""

    pid: int
    started: float | None = None   # psutil create_time; None: unknown

    @classmethod
    def current(cls) -> 'Owner':
        process = psutil.Process()
        return cls(process.pid, process.create_time())

    def alive(self, not_after: float | None = None) -> bool:
        """The owner still runs.  Without a recorded start time, a process
        with this pid counts only if it started before ``not_after`` (the
        directory's time): one started later cannot have made it."""
        try:
            process = psutil.Process(self.pid)
            created = process.create_time()
            if process.status() == psutil.STATUS_ZOMBIE:
                return False
        except psutil.NoSuchProcess:
            return False
        except psutil.Error:
            return True     # cannot tell: never take a live build's dir
        if self.started is not None:
            return abs(created - self.started) < START_TOLERANCE
        if not_after is not None:
            return created <= not_after + START_TOLERANCE
        return True

    def describe(self) -> str:
        return f'pid {self.pid}'


def _ours(path: pathlib.Path | str, private: bool = False) -> bool:
    """``path`` is a directory of this user's own, not a symlink (and, if
    ``private``, not writable by others): nothing anyone else made is
    trusted, let alone torn down."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
        return False
    return not (private and st.st_mode & (stat.S_IWGRP | stat.S_IWOTH))


def _registry() -> pathlib.Path | None:
    """The registry directory when it is usable (made here if missing),
    else None (someone else's, or open to others: ignored)."""
    directory = registry_dir()
    with contextlib.suppress(FileExistsError):
        directory.mkdir(mode=0o700, parents=True)
    if _ours(directory, private=True):
        return directory
    LOG.warning('Ignoring %s: not a private directory of this user',
                directory)
    return None


def _write_json(path: pathlib.Path, data: object) -> None:
    files.write_atomic(path, json.dumps(data, sort_keys=True) + '\n')


def _entry_path(path: pathlib.Path | str,
                registry: pathlib.Path | None = None) -> pathlib.Path:
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:20]
    return (registry or registry_dir()) / f'{digest}.json'


def read_owner(path: pathlib.Path | str) -> 'Owner | None':
    """The Owner recorded in ``path`` (None when there is no record)."""
    try:
        data = json.loads((pathlib.Path(path) / OWNER_FILE).read_text())
        return Owner(int(data['pid']), float(data['started']))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def create(parent: pathlib.Path | str, prefix: str, kind: str) -> pathlib.Path:
    """A new work directory under ``parent`` owned by this process."""
    owner = Owner.current()
    parent = pathlib.Path(parent)
    parent.mkdir(parents=True, exist_ok=True)
    path = pathlib.Path(mounts.canonical(tempfile.mkdtemp(
        prefix=f'{prefix}{owner.pid}-', dir=parent)))
    record = {'pid': owner.pid, 'started': owner.started, 'kind': kind,
              'path': str(path)}
    _write_json(path / OWNER_FILE, record)
    registry = _registry()
    if registry is not None:
        _write_json(_entry_path(path, registry), record)
    return path


def marker_env(path: pathlib.Path | str) -> dict[str, str]:
    """What to add to the environment of the processes a build runs."""
    return {MARKER_ENV: str(path)}


def _ancestors() -> set[int]:
    mine = {os.getpid()}
    with contextlib.suppress(psutil.Error):
        mine.update(p.pid for p in psutil.Process().parents())
    return mine


def processes_of(path: pathlib.Path | str) -> list[psutil.Process]:
    """Processes working for the build of ``path``: the marker (or DIB's
    or mmdebstrap's directory variables) in their environment names a
    place below it, or their root (chroot) is below it.  Never this
    process or its parents."""
    root = mounts.canonical(path)
    spared = _ancestors()
    found = []
    for process in psutil.process_iter():
        if process.pid in spared:
            continue
        try:
            env = process.environ()
            chroot = os.readlink(f'/proc/{process.pid}/root')
        except (psutil.Error, OSError):
            continue
        named = (os.path.normpath(env[key]) for key in DIR_ENV
                 if env.get(key, '').startswith('/'))
        if (any(mounts.is_under(value, root) for value in named)
                or (chroot != '/' and mounts.is_under(chroot, root))):
            found.append(process)
    return found


def stop_processes(path: pathlib.Path | str, wait: float = KILL_WAIT) -> int:
    """SIGKILL the build's processes (until no new ones appear); the
    number stopped."""
    stopped = set()
    for _ in range(5):
        found = [p for p in processes_of(path) if p.pid not in stopped]
        if not found:
            break
        for process in found:
            with contextlib.suppress(psutil.Error):
                process.kill()
            stopped.add(process.pid)
        _, alive = psutil.wait_procs(found, timeout=wait)
        for process in alive:
            LOG.warning('Process %d of the build in %s does not exit',
                        process.pid, path)
    return len(stopped)


@dataclasses.dataclass
class Swept:
    """What a sweep or a release did to one work directory."""

    path: str
    owner: str
    action: str
    detail: str = ''


def release(path: pathlib.Path | str, owner: str = '') -> 'Swept':
    """Stop the build's processes, undo its mounts and loop devices, and
    remove ``path`` and its registry entry.  Returns a Swept row (action
    FAILED, with the reason, when something stayed mounted)."""
    path = pathlib.Path(path)
    details = []
    stopped = stop_processes(path)
    if stopped:
        details.append(f'{stopped} process(es) stopped')
    undone = mounts.teardown(path)
    if undone.summary():
        details.append(undone.summary())
    try:
        mounts.remove_tree(path)
    except OSError as exc:
        details.append(str(exc))
        LOG.error('%s', exc)
        return Swept(str(path), owner, FAILED, '; '.join(details))
    _entry_path(path).unlink(missing_ok=True)
    return Swept(str(path), owner, DELETED, '; '.join(details))


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """SIGINT, SIGTERM and SIGHUP wait while the block runs (a second
    Ctrl-C does not cut a teardown short); they arrive after it."""
    held = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


@contextlib.contextmanager
def owned(parent: pathlib.Path | str, prefix: str,
          kind: str) -> Iterator[pathlib.Path]:
    """A work directory for the block (see the module's docstring); torn
    down and removed when the block is left, however it is left."""
    path = create(parent, prefix, kind)
    try:
        yield path
    finally:
        with _signals_held():
            swept = release(path, f'pid {os.getpid()}')
        if swept.action != DELETED:
            LOG.warning('Work directory %s could not be removed: %s; the '
                        'next build or `trovestack clean` tries again',
                        path, swept.detail)


def _dir_time(path: pathlib.Path | str) -> float | None:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return None


def _owner_from_name(path: pathlib.Path, prefix: str) -> 'Owner | None':
    """The pid a work directory's name starts with (<prefix><pid>...)."""
    rest = path.name[len(prefix):] if path.name.startswith(prefix) else ''
    digits = rest.split('-', 1)[0]
    return Owner(int(digits)) if digits.isdigit() else None


def _candidates(
        globs: Iterable[tuple[pathlib.Path | str, str]],
) -> list[tuple[pathlib.Path, Owner | None]]:
    """(path, Owner or None) of every registry entry and every directory
    matching (parent, prefix) in ``globs``; only this user's own
    directories (never through a symlink)."""
    seen: dict[str, tuple[pathlib.Path, Owner | None]] = {}
    registry = _registry()
    for entry in sorted(registry.glob('*.json')) if registry else ():
        try:
            data = json.loads(entry.read_text())
            path = pathlib.Path(data['path'])
            owner = Owner(int(data['pid']), float(data['started']))
        except (OSError, ValueError, KeyError, TypeError):
            entry.unlink(missing_ok=True)
            continue
        # The directory must be what the entry says: this user's, at its
        # canonical path, recording the same owner.
        if (not _ours(path) or mounts.canonical(path) != str(path)
                or read_owner(path) != owner):
            entry.unlink(missing_ok=True)
            continue
        seen[str(path)] = (path, owner)
    for parent, prefix in globs:
        pattern = os.path.join(glob.escape(str(parent)),
                               glob.escape(prefix) + '*')
        for name in sorted(glob.glob(pattern)):
            path = pathlib.Path(mounts.canonical(name))
            if str(path) in seen or not _ours(name):
                continue
            seen[str(path)] = (path, read_owner(path)
                               or _owner_from_name(path, prefix))
    return list(seen.values())


def _would(path: pathlib.Path) -> str:
    found = [len(mounts.mounts_under(path)), len(mounts.loops_under(path))]
    return f'{found[0]} mount(s), {found[1]} loop device(s) below it'


def sweep(globs: Iterable[tuple[pathlib.Path | str, str]] = (),
          foreign: Iterable[pathlib.Path | str] = (),
          dry_run: bool = False) -> list[Swept]:
    """Clean up after builds that are gone; returns [Swept].

    Looks at every registry entry, every directory ``<parent>/<prefix>*``
    for (parent, prefix) in ``globs``, and the ``foreign`` directories (a
    tool's own leftovers whose creator the caller found gone, e.g.
    diskimage-builder's /tmp/dib_build.*).  A directory whose owner still
    runs is left alone and not listed.  Without root, a directory with
    something mounted below it is listed as kept.
    """
    rows = []
    # One sweep at a time on this host: two builds starting together
    # must not tear the same directory down twice.
    with files.exclusive_lock(files.key_lock_path('workdir-sweep', 'sweep')):
        todo = []
        for path, owner in _candidates(globs):
            if owner is not None and owner.alive(_dir_time(path)):
                continue
            todo.append((path, f'{owner.describe()} (gone)' if owner
                         else 'unknown owner (gone)'))
        todo += [(pathlib.Path(mounts.canonical(p)), 'creator gone')
                 for p in foreign if _ours(p)]
        for path, gone in todo:
            if dry_run:
                rows.append(Swept(str(path), gone, WOULD_DELETE,
                                  _would(path)))
            elif os.geteuid() != 0 and mounts.mounts_under(path):
                rows.append(Swept(str(path), gone, KEPT,
                                  f'{_would(path)}: needs root'))
            else:
                LOG.debug('Cleaning up %s, left by a build that was killed '
                         '(%s)', path, gone)
                rows.append(release(path, gone))
    return rows
