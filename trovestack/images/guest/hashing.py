"""The build hash: one digest over all that decides an image's content."""

import hashlib
import json

from trovestack.common import files

# The build hash, next to the image, that load-trove-image stores in Glance.
BUILD_HASH_SUFFIX = '.build-hash'
# The build record next to the image (builder.sidecar_path).
SIDECAR_SUFFIX = '.build.json'

file_digest = files.file_sha256
elements_digest = files.tree_digest


def build_hash(inputs):
    """sha256 of the canonical JSON form of ``inputs`` (a dict of strings)."""
    text = json.dumps(inputs, sort_keys=True, separators=(',', ':'))
    return hashlib.sha256(text.encode()).hexdigest()
