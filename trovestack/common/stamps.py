"""Records beside a built file: is the file still the one they describe?

A build writes a JSON record next to what it made (``<file><suffix>``):
the hash of its inputs under a key of the builder's, the file's size and
modification time, and whatever else it wants to remember.  A later build
with the same inputs hash reuses the file while its size and mtime are
still the recorded ones (a file copied with its mtime kept counts as the
same; a file written since does not).  The guest image's sidecar
(``.build.json``) and the datastore images' stamps (``.inputs.json``) are
such records.  Published last, after the file itself, so that a build
killed in between never leaves a record that lies.
"""

import json
import os
import pathlib
from typing import Any

from trovestack.common import files


def path(artifact: pathlib.Path | str, suffix: str) -> pathlib.Path:
    """Where ``artifact``'s record with ``suffix`` is."""
    return pathlib.Path(f'{artifact}{suffix}')


def read(artifact: pathlib.Path | str, suffix: str) -> dict[str, Any] | None:
    """The record beside ``artifact``, or None (none, or unreadable)."""
    try:
        return json.loads(path(artifact, suffix).read_text())
    except (OSError, ValueError):
        return None


def describes(record: dict[str, Any] | None,
              artifact: pathlib.Path | str) -> bool:
    """True when ``artifact`` exists with the record's size and mtime."""
    if not record:
        return False
    try:
        st = os.stat(artifact)
    except OSError:
        return False
    return (st.st_size, st.st_mtime_ns) == (record.get('size'),
                                            record.get('mtime_ns'))


def fresh(artifact: pathlib.Path | str, suffix: str, key: str,
          value: object) -> dict[str, Any] | None:
    """The record when it has ``key`` = ``value`` and still describes
    ``artifact``; else None."""
    record = read(artifact, suffix)
    if not record or record.get(key) != value:
        return None
    return record if describes(record, artifact) else None


def write(artifact: pathlib.Path | str, suffix: str,
          record: dict[str, Any]) -> dict[str, Any]:
    """Write ``record`` with ``artifact``'s size and mtime beside it
    (atomically); the record written."""
    st = os.stat(artifact)
    record = {**record, 'size': st.st_size, 'mtime_ns': st.st_mtime_ns}
    files.write_atomic(path(artifact, suffix),
                       json.dumps(record, indent=2, sort_keys=True) + '\n')
    return record
