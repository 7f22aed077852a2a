#!/usr/bin/env python3
"""Download a prebuilt guest image and verify its sha256 before using it.

devstack's extra phase runs this file with its Python; the digest comes
from trovestack.common.files, imported from this checkout (it needs only
the standard library, so the project need not be installed yet).  The file
is written next to its destination and renamed into place only after the
checksum matches, so a failed or tampered download never leaves a
usable-looking image behind.  An existing file with the expected checksum
is kept (no download).
"""

import argparse
import hashlib
import os
import pathlib
import sys
import tempfile
import urllib.error
import urllib.request

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))
from trovestack.common import files  # noqa: E402 - after the path above

CHUNK = files.CHUNK


def download(url, output, timeout):
    """Stream url into a temporary file beside output; return its sha256."""
    digest = hashlib.sha256()
    handle, partial = tempfile.mkstemp(dir=output.parent,
                                       prefix=f'.{output.name}.')
    try:
        with os.fdopen(handle, 'wb') as target, \
                urllib.request.urlopen(url, timeout=timeout) as source:
            for block in iter(lambda: source.read(CHUNK), b''):
                digest.update(block)
                target.write(block)
    except BaseException:
        os.unlink(partial)
        raise
    return partial, digest.hexdigest()


def fetch(url, output, sha256, timeout):
    output.parent.mkdir(parents=True, exist_ok=True)
    if output.is_file() and files.file_sha256(output) == sha256:
        print(f'{output} is up to date')
        return
    partial, actual = download(url, output, timeout)
    if actual != sha256:
        os.unlink(partial)
        raise ValueError(f'sha256 of {url} is {actual}, expected {sha256}')
    os.replace(partial, output)
    print(f'downloaded {url} to {output}')


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('url', metavar='<url>', help='http(s) URL')
    parser.add_argument('--output', metavar='<file>', required=True,
                        type=pathlib.Path, help='Where to put the image')
    parser.add_argument('--sha256', metavar='<hex>', required=True,
                        type=str.lower, help='Expected sha256 of the file')
    parser.add_argument('--timeout', metavar='<seconds>', type=float,
                        default=60.0,
                        help='Socket timeout in seconds (default: 60)')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        fetch(args.url, args.output.absolute(), args.sha256, args.timeout)
    except (OSError, ValueError, urllib.error.URLError) as exc:
        print(f'fetch_guest_image: {exc}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
