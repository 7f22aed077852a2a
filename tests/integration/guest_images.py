"""The one guest image the guest-booting tests share.

The container-mode Debian guest with MariaDB 11.8 embedded, built by
``trove-image-builder`` into its cache (rebuilt only when its inputs
change), so verify-image, the compute cloud's Trove instance and the
devstack plugin's proof boot the same image and a test session builds it at
most once.  TROVESTACK_COMPUTE_GUEST_IMAGE names another image to use as is.
"""

import functools
import json
import os
import pathlib

from tests import helpers
from trovestack.imagebuild import builder

EMBEDDED = 'mariadb:11.8'
NAME = 'trove-guest-verify-embedded-mariadb-11.8.qcow2'


def embedded_mariadb_image():
    """Path of the guest image with ``EMBEDDED`` in it (built if needed)."""
    given = os.environ.get('TROVESTACK_COMPUTE_GUEST_IMAGE')
    if given:
        return pathlib.Path(given)
    return build_embedded_mariadb_image()[0]


@functools.cache
def build_embedded_mariadb_image():
    """(path, trove-image-builder's JSON result) of the shared image, built
    when missing or out of date (its inputs changed); asked once per test
    session."""
    image = builder.default_cache_dir() / 'images' / NAME
    result = helpers.run_json('trove-image-builder', '--datastore', 'mariadb',
                              '--embed-datastore-image', EMBEDDED,
                              '--output', image)
    assert result['Image'] == str(image)
    sidecar = json.loads(pathlib.Path(f'{image}.build.json').read_text())
    assert [e['name'] for e in sidecar['embedded_datastore_images']] == [
        EMBEDDED]
    return image, result
