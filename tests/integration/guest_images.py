"""The guest images the guest-booting tests share.

The container-mode Debian guest with MariaDB 11.8 and PostgreSQL 17
embedded, built by ``trove-image-builder`` into its cache (rebuilt only
when its inputs change), so verify-image, the compute cloud's Trove
instances of both datastores and the devstack plugin's proof boot the same
image and a test session builds it at most once.
TROVESTACK_COMPUTE_GUEST_IMAGE names another image to use as is.

:func:`tree_agent_image` is that image with the guest agent of a Trove
tree (tests/trove_tree.py): the image a Trove developer's change gets,
made by the builder's agent-only path from a copy of the shared one.  The
compute cloud's instances boot :func:`compute_image`: the shared image
with the agent of the pinned trove's tree marked ``TREE_MARKER``.
"""

import functools
import os
import pathlib
import shutil

from tests import helpers
from tests import trove_tree
from trovestack.images.guest import builder

# The datastore verify-image boots; the image holds EMBEDDED_IMAGES.
EMBEDDED = 'mariadb:11.8'
EMBEDDED_IMAGES = (EMBEDDED, 'postgresql:17')
NAME = 'trove-guest-verify-embedded-mariadb-11.8-postgresql-17.qcow2'
TREE_NAME = NAME.replace('.qcow2', '-agent-tree.qcow2')
# What the agent of the compute cloud's image logs when it starts.
TREE_MARKER = 'built-into-the-image-from-the-tree'
# The files the builder keeps beside an image: its records.
RECORDS = ('.sha256', '.md5', builder.BUILD_HASH_SUFFIX,
           builder.SIDECAR_SUFFIX)


def build_args():
    """trove-image-builder's arguments of the shared image (all but
    ``--output``)."""
    args = ['--datastore', 'mariadb']
    for name in EMBEDDED_IMAGES:
        args += ['--embed-datastore-image', name]
    return args


def embedded_mariadb_image():
    """Path of the shared guest image (built if needed)."""
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
    result = helpers.run_json('trove-image-builder', *build_args(),
                              '--output', image)
    assert result['Image'] == str(image)
    sidecar = builder.read_sidecar(image)
    assert [e['name'] for e in sidecar['embedded_datastore_images']] == list(
        EMBEDDED_IMAGES)
    return image, result


def tree_agent_image(tree):
    """(path, trove-image-builder's JSON result) of the shared image with
    ``tree``'s guest agent: the shared image and its records are copied
    (mtimes kept: the builder trusts them) where the tree's image goes,
    unless that one was made from the same base already, and the builder
    puts the tree's agent in (agent-only), or finds it there (skipped)."""
    shared = embedded_mariadb_image()
    image = shared.with_name(TREE_NAME)
    base = builder.read_sidecar(shared)['base_hash']
    if (builder.read_sidecar(image) or {}).get('base_hash') != base:
        copy_image(shared, image)
    result = helpers.run_json(
        'trove-image-builder', *build_args(), '--guest-agent-source',
        'local', '--guest-agent-path', tree, '--output', image)
    assert result['Build path'] in (builder.AGENT_ONLY, builder.SKIPPED), (
        result)
    return image, result


def compute_image(tmp_path_factory):
    """(path, the agent's marker or None) of the compute cloud's image:
    the tree image of the pinned trove marked ``TREE_MARKER``, or
    TROVESTACK_COMPUTE_GUEST_IMAGE as is (no marker)."""
    given = os.environ.get('TROVESTACK_COMPUTE_GUEST_IMAGE')
    if given:
        return pathlib.Path(given), None
    return _compute_image(tmp_path_factory.getbasetemp() / 'agent-tree')


@functools.cache
def _compute_image(root):
    tree = trove_tree.make_tree(root, agent_marker=TREE_MARKER)
    return tree_agent_image(tree)[0], TREE_MARKER


def copy_image(image, dest):
    """``image`` with its records at ``dest`` (mtimes kept: the builder
    takes the copy as up to date); ``dest``."""
    for suffix in ('', *RECORDS):
        shutil.copy2(f'{image}{suffix}', f'{dest}{suffix}')
    return dest
