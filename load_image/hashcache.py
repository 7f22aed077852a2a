"""Remembered content hashes of image files.

Hashing a multi-GiB guest image takes seconds, and re-running
load-trove-image on an unchanged file is the common case.  A file's hashes
are reused while its size, inode, mtime and ctime are all unchanged (any
write to the file changes its ctime, which no tool can set back).
"""

import json
import logging
import os
import pathlib
from typing import Any

from trovestack.common import files

LOG = logging.getLogger(__name__)
MAX_ENTRIES = 200


def cache_file() -> pathlib.Path:
    return files.cache_dir('trovestack', 'image-hashes.json')


def _identity(path: pathlib.Path | str) -> list[int]:
    st = os.stat(path)
    return [st.st_size, st.st_ino, st.st_mtime_ns, st.st_ctime_ns]


def _load(store: pathlib.Path) -> dict[str, Any]:
    try:
        return json.loads(store.read_text())
    except (OSError, ValueError):
        return {}


def lookup(path: pathlib.Path | str) -> tuple[str, str] | None:
    """(sha256, sha512) remembered for path, or None."""
    entry = lookup_entry(path)
    return (entry['sha256'], entry['sha512']) if entry else None


def lookup_entry(path: pathlib.Path | str) -> dict[str, Any] | None:
    """Everything remembered for the unchanged file at path (the hashes
    and the facts given to remember()), or None."""
    entry = _load(cache_file()).get(str(path))
    if entry and entry.get('identity') == _identity(path):
        LOG.debug('Reusing the remembered hashes of %s', path)
        return entry
    return None


def remember(path: pathlib.Path | str, sha256: str, sha512: str,
             **facts: object) -> None:
    """Store the hashes of path, and other ``facts`` about its content; a
    cache that cannot be written is skipped."""
    store = cache_file()
    entries = _load(store)
    entries.pop(str(path), None)
    entries[str(path)] = {**facts, 'identity': _identity(path),
                          'sha256': sha256, 'sha512': sha512}
    while len(entries) > MAX_ENTRIES:
        entries.pop(next(iter(entries)))
    try:
        files.write_atomic(store, json.dumps(entries))
    except OSError as exc:
        LOG.debug('Cannot write the hash cache %s: %s', store, exc)
