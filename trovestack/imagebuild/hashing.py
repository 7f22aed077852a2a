"""The build hash: one digest over all that decides an image's content."""

import hashlib
import json
import os
import pathlib


def file_digest(path, chunk=1 << 20):
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(chunk), b''):
            digest.update(block)
    return digest.hexdigest()


def elements_digest(element_dirs):
    """sha256 over every file (path, executable bit, content) of the trees."""
    digest = hashlib.sha256()
    for root in element_dirs:
        root = pathlib.Path(root)
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if d != '__pycache__')
            for name in sorted(filenames):
                path = pathlib.Path(dirpath, name)
                if path.suffix == '.pyc':
                    continue
                rel = str(path.relative_to(root))
                executable = os.access(path, os.X_OK)
                digest.update(('%s\0%d\0' % (rel, executable)).encode())
                digest.update(path.read_bytes())
    return digest.hexdigest()


def build_hash(inputs):
    """sha256 of the canonical JSON form of ``inputs`` (a dict of strings)."""
    text = json.dumps(inputs, sort_keys=True, separators=(',', ':'))
    return hashlib.sha256(text.encode()).hexdigest()
