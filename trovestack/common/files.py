"""File digests, atomic writes and the XDG state/cache/config paths."""

import contextlib
import dataclasses
import fcntl
import fnmatch
import hashlib
import json
import os
import pathlib
import tempfile
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Iterator
from typing import Any
from typing import TypeVar

CHUNK = 1 << 20

_R = TypeVar('_R')


def file_digests(
        path: pathlib.Path | str, algorithms: Iterable[str] = ('sha256',),
        progress: Callable[[int], None] | None = None) -> dict[str, str]:
    """{algorithm: hex digest} of the file, read once in 1 MiB chunks.

    ``progress(nbytes)`` is called after each chunk when given.
    """
    digests = {name: hashlib.new(name) for name in algorithms}
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(CHUNK), b''):
            for digest in digests.values():
                digest.update(block)
            if progress is not None:
                progress(len(block))
    return {name: digest.hexdigest() for name, digest in digests.items()}


def file_sha256(path: pathlib.Path | str) -> str:
    """Hex sha256 of a file."""
    return file_digests(path)['sha256']


def tree_digest(roots: Iterable[pathlib.Path | str],
                skip_dirs: Iterable[str] = ('__pycache__',),
                skip_suffixes: Iterable[str] = ('.pyc',)) -> str:
    """sha256 over every file of the trees: relative path, executable bit
    and content, in a stable order.  ``skip_dirs`` are names or glob
    patterns (``*.egg-info``)."""
    digest = hashlib.sha256()
    for root in roots:
        root = pathlib.Path(root)
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(
                d for d in dirnames
                if not any(fnmatch.fnmatch(d, skip) for skip in skip_dirs))
            for name in sorted(filenames):
                path = pathlib.Path(dirpath, name)
                if path.suffix in skip_suffixes or not path.is_file():
                    continue
                rel = str(path.relative_to(root))
                executable = os.access(path, os.X_OK)
                digest.update(('%s\0%d\0' % (rel, executable)).encode())
                digest.update(path.read_bytes())
    return digest.hexdigest()


@contextlib.contextmanager
def atomic_output(path: pathlib.Path | str,
                  mode: int | None = None) -> Iterator[pathlib.Path]:
    """Yield a temporary path beside ``path`` to write to; on success it is
    fsynced and renamed over ``path`` (readers see old or new, never half),
    on any error or interruption it is removed."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix='.%s.' % path.name)
    os.close(fd)
    try:
        yield pathlib.Path(tmp)
        with open(tmp, 'rb+') as f:
            os.fsync(f.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def write_atomic(path: pathlib.Path | str, data: str | bytes,
                 mode: int | None = None) -> pathlib.Path:
    """Write text or bytes to path atomically (see atomic_output)."""
    payload = data.encode() if isinstance(data, str) else data
    with atomic_output(path, mode) as tmp:
        tmp.write_bytes(payload)
    return pathlib.Path(path)


def load_record(path: pathlib.Path | str,
                kind: Callable[..., _R]) -> _R | None:
    """The record saved at path (``kind(**fields)``: a dataclass, or dict),
    or None when there is none: the one state-file model of the local
    cloud, its compute layer, its broker and its registry."""
    try:
        return kind(**json.loads(pathlib.Path(path).read_text()))
    except FileNotFoundError:
        return None


def save_record(path: pathlib.Path | str, record: Any) -> pathlib.Path:
    """Save a dataclass (or dict) record as JSON only its owner can read
    (records hold passwords)."""
    fields = record if isinstance(record, dict) else dataclasses.asdict(
        record)
    return write_atomic(path, json.dumps(fields, indent=2, sort_keys=True),
                        mode=0o600)


def lock_path(path: pathlib.Path | str) -> pathlib.Path:
    """Where ``output_lock`` locks ``path``: a per-user directory in the
    temporary directory (shared by every session of the user, whatever its
    XDG settings), the file named after the absolute path."""
    path = pathlib.Path(path).absolute()
    return key_lock_path(path.name, str(path))


def key_lock_path(name: str, key: str) -> pathlib.Path:
    """A lock file in the same per-user directory for anything ``key``
    names (e.g. a cloud resource); ``name`` makes it readable."""
    tag = hashlib.sha256(key.encode()).hexdigest()[:16]
    directory = pathlib.Path(tempfile.gettempdir(),
                             f'trovestack-locks-{os.getuid()}')
    directory.mkdir(mode=0o700, exist_ok=True)
    return directory / f'{name}-{tag}.lock'


@contextlib.contextmanager
def exclusive_lock(
        lock_file: pathlib.Path | str,
        on_wait: Callable[[], object] | None = None) -> Iterator[None]:
    """Hold an exclusive flock on ``lock_file`` (made when missing) while
    the block runs; another holder, in any process, waits for it (calling
    ``on_wait()`` first when it has to)."""
    with open(lock_file, 'a') as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait is not None:
                on_wait()
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def output_lock(path: pathlib.Path | str) -> Iterator[None]:
    """Hold an exclusive lock on ``path``'s build while the block runs.

    A second build of the same output (another process) waits here, then
    finds the first one's result up to date instead of writing the same
    file at the same time.  Nothing is written beside the output.
    """
    with exclusive_lock(lock_path(path)):
        yield


def _xdg(variable: str, default: str) -> pathlib.Path:
    return pathlib.Path(os.environ.get(variable)
                        or os.path.expanduser(default))


def cache_dir(*parts: str) -> pathlib.Path:
    """$XDG_CACHE_HOME (default ~/.cache) joined with parts."""
    return _xdg('XDG_CACHE_HOME', '~/.cache').joinpath(*parts)


def state_dir(*parts: str) -> pathlib.Path:
    """$XDG_STATE_HOME (default ~/.local/state) joined with parts."""
    return _xdg('XDG_STATE_HOME', '~/.local/state').joinpath(*parts)


def config_dir(*parts: str) -> pathlib.Path:
    """$XDG_CONFIG_HOME (default ~/.config) joined with parts."""
    return _xdg('XDG_CONFIG_HOME', '~/.config').joinpath(*parts)
