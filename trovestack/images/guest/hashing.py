"""The build hash: one digest over all that decides an image's content."""

import hashlib
import json
from typing import Any

from trovestack.common import files

file_digest = files.file_sha256
elements_digest = files.tree_digest


def build_hash(inputs: dict[str, Any]) -> str:
    """sha256 of the canonical JSON form of ``inputs`` (a dict of strings)."""
    text = json.dumps(inputs, sort_keys=True, separators=(',', ':'))
    return hashlib.sha256(text.encode()).hexdigest()
