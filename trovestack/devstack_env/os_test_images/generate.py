"""Blank test images and their manifest, for tempest's image format tests.

trovestack stages this in place of openstack/os-test-images (which is not
on PyPI): the same output (images/ with manifest.yaml listing each image's
name, format, file and whether services should accept it), fewer images:
only ones qemu-img makes as they are, all of them usable.  Standard library
only (it runs in a tox environment without dependencies); the manifest is
JSON, which YAML readers take.
"""

import json
import pathlib
import subprocess
import sys

IMAGES = (
    ('standard-qcow2v3', 'qcow2', 'a blank qcow2 file, nothing linked'),
    ('standard-raw', 'raw', 'a blank raw file'),
)


def main(output: str = 'images') -> int:
    out = pathlib.Path(output)
    out.mkdir(exist_ok=True)
    listed = []
    for name, fmt, description in IMAGES:
        filename = f'{name}.{fmt}'
        subprocess.run(['qemu-img', 'create', '-q', '-f', fmt,
                        str(out / filename), '10M'], check=True)
        listed.append({'name': name, 'format': fmt, 'filename': filename,
                       'usable': True, 'insecure': False,
                       'description': description})
    (out / 'manifest.yaml').write_text(
        json.dumps({'images': listed}, indent=2) + '\n')
    return 0


if __name__ == '__main__':
    sys.exit(main(*sys.argv[1:]))
