"""What the staging cache holds, and removing what nothing uses any more.

Every artifact is ``<kind>-<key>`` with its ``.json`` record beside it
(staging.cached).  Each use touches the record, and ``stage`` writes the
names it used last into ``latest.json``.  An artifact is kept when the
latest staging used it, an environment's container was made from it
(its ``lower``), a running container mounts or binds it, a build holds
its lock, or it was used within the last hour (a run that is staging
now); everything else can go.
"""

import dataclasses
import fcntl
import json
import os
import pathlib
import re
import time

import psutil

from trovestack.common import files
from trovestack.common import mounts
from trovestack.devstack_env import container
from trovestack.devstack_env import layout

LATEST = 'latest.json'
RECENT = 3600.0


@dataclasses.dataclass(frozen=True)
class Entry:
    """One artifact in the cache."""

    name: str
    path: pathlib.Path
    size: int           # bytes on disk
    last_used: float    # its record's mtime
    kept_for: str       # why it stays ('' when it can go)


def record_path(path: pathlib.Path) -> pathlib.Path:
    return path.with_name(path.name + '.json')


def lock_path(path: pathlib.Path) -> pathlib.Path:
    return path.with_name(f'.{path.name}.lock')


def mark_used(path: pathlib.Path) -> None:
    """Note that an artifact was just used (its record's mtime)."""
    try:
        os.utime(record_path(path))
    except FileNotFoundError:
        pass


def write_latest(root: pathlib.Path, paths: list[pathlib.Path]) -> None:
    files.write_atomic(root / LATEST,
                       json.dumps(sorted(p.name for p in paths), indent=2))


def _latest(root: pathlib.Path) -> set[str]:
    try:
        return set(json.loads((root / LATEST).read_text()))
    except (OSError, ValueError, TypeError):
        return set()


def _lowers() -> dict[str, str]:
    """Artifact name -> environment, for every environment's container
    record (a stopped one's too: its next ``up`` stages again anyway, but
    a record means someone may still look inside)."""
    found = {}
    for saved in sorted(layout.state_root().glob('*/container.json')):
        try:
            record = container.load(layout.EnvPaths.of(saved.parent.name))
        except (OSError, container.ContainerError):
            continue
        if record is not None and record.lower:
            found[pathlib.Path(record.lower).name] = saved.parent.name
    return found


def _running_uses() -> str:
    """What running containers use, as text to search for a path: every
    systemd-nspawn's command line (the repository and wheelhouse binds)
    and every overlay's lower directories (the rootfs), whatever state
    directory their environment lives in."""
    texts = []
    for proc in psutil.process_iter(['name', 'cmdline']):
        if proc.info['name'] == 'systemd-nspawn':
            texts.append(' '.join(proc.info['cmdline'] or ()))
    try:
        for line in pathlib.Path('/proc/self/mountinfo').read_text(
                ).splitlines():
            if ' - overlay ' in line:
                texts.append(line)
    except OSError:
        pass
    return '\n'.join(texts)


def _size(path: pathlib.Path) -> int:
    total = 0
    for top, _dirs, names in os.walk(path):
        for name in names:
            try:
                total += os.lstat(os.path.join(top, name)).st_blocks * 512
            except OSError:
                pass
    return total


def _locked(path: pathlib.Path) -> bool:
    lock = lock_path(path)
    if not lock.exists():
        return False
    with open(lock, 'a') as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
    return False


def entries(root: pathlib.Path | None = None, *,
            now: float | None = None) -> list[Entry]:
    """Every complete artifact in the cache and why it stays, if it does."""
    root = root or layout.cache_root()
    now = time.time() if now is None else now
    latest, lowers, running = _latest(root), _lowers(), _running_uses()
    found = []
    for record in sorted(root.glob('*.json')):
        path = record.with_suffix('')
        if record.name == LATEST or not path.is_dir():
            continue
        used = record.stat().st_mtime
        if path.name in latest:
            why = 'used by the latest staging'
        elif path.name in lowers:
            why = f'environment {lowers[path.name]}'
        elif re.search(re.escape(str(path)) + r'(?![\w-])', running):
            why = 'used by a running container'
        elif now - used < RECENT:
            why = 'used within the hour'
        elif _locked(path):
            why = 'being built'
        else:
            why = ''
        found.append(Entry(path.name, path, _size(path), used, why))
    return found


def prune(root: pathlib.Path | None = None, *,
          dry_run: bool = False) -> list[Entry]:
    """Remove the artifacts nothing keeps (each under its lock); every
    entry, those removed (or that would be, with ``dry_run``) with an
    empty ``kept_for``."""
    found = entries(root)
    for entry in found:
        if not entry.kept_for and not dry_run:
            with files.exclusive_lock(lock_path(entry.path)):
                record_path(entry.path).unlink(missing_ok=True)
                discard(entry.path)
    return found


def discard(path: pathlib.Path) -> None:
    """An artifact's directory gone, mounts below it first."""
    mounts.teardown(path)
    mounts.remove_tree(path)
