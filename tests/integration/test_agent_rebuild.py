"""The guest agent from a Trove tree, and the agent-only rebuild (issue 24).

The tree is the trove sdist the venv pins, unpacked, with the guest agent
marker (tests/trove_tree.py).  The image is kept in the builder's cache
under its own name, so a later session rebuilds it from there: the first
build of a session is a full diskimage-builder build only when the cache
holds no image of the same base (everything but the agent); after a change
of the agent marker alone the rebuild must take the agent-only path (the
path is asserted, not the time) and the image must hold the new agent.
Images are inspected offline (qemu-img convert + read-only loop mount).

Needs root and the packages from tools/install-image-build-deps.
"""

import json
import os
import pathlib
import signal
import subprocess
import time
import uuid

import pytest

from tests import helpers
from tests import load_image_support as support
from tests import trove_tree
from tests.integration import guest_images
from tests.integration.test_image_build import _mounted
from tests.integration.test_killed_builds import Build
from tests.integration.test_killed_builds import clean_builds
from tests.integration.test_killed_builds import leftovers
from tests.integration.test_killed_builds import nothing_left
from trovestack.common import workdirs
from trovestack.images.guest import builder
from trovestack.images.guest import host

pytestmark = pytest.mark.image_build

NAME = 'trove-guest-test-agent-tree.qcow2'
AGENT_MODULE = ('opt/guest-agent-venv/lib/python3.11/site-packages/'
                + str(trove_tree.AGENT_MODULE))
SESSION = uuid.uuid4().hex[:8]


@pytest.fixture(scope='module')
def build_host():
    try:
        host.check_root()
        host.check_tools(device_mapper=host.has_device_mapper(),
                         extra={'qemu-storage-daemon':
                                'qemu-system-common'})
    except Exception as e:
        pytest.fail('%s (run tools/install-image-build-deps)' % e)


@pytest.fixture(scope='module')
def tree(tmp_path_factory):
    return trove_tree.make_tree(tmp_path_factory.mktemp('tree'),
                      agent_marker=f'one-{SESSION}')


@pytest.fixture(scope='module')
def image():
    return builder.default_cache_dir() / 'images' / NAME


def _build(image, tree, *extra):
    started = time.monotonic()
    result = helpers.run_json(
        'trove-image-builder', '--datastore', 'mariadb',
        '--guest-agent-source', 'local', '--guest-agent-path', tree,
        '--output', image, *extra)
    result['seconds'] = time.monotonic() - started
    return result


def _sidecar(image):
    return json.loads(pathlib.Path(f'{image}.build.json').read_text())


def _dead_builds_left(directory):
    """Work directories in the builder's cache whose build is over: a
    live one (the other test lane may build the shared image there) is not
    this test's."""
    left = []
    for path in directory.glob('.build-*'):
        owner = workdirs.read_owner(path)
        if owner is None or not owner.alive():
            left.append(path)
    return left


def _agent_in(image, workdir):
    with _mounted(image, workdir) as root:
        return (root / AGENT_MODULE).read_text()


@pytest.fixture(scope='module')
def first(build_host, tree, image, tmp_path_factory):
    """The image with the agent marked one-<session>: a full build, or
    agent-only from the image an earlier session left in the cache."""
    result = _build(image, tree)
    assert result['Build path'] in (builder.FULL, builder.AGENT_ONLY)
    agent = _agent_in(image, tmp_path_factory.mktemp('first'))
    assert f'one-{SESSION}' in agent
    return result


def test_first_build_records_the_tree(first, tree, image):
    sidecar = _sidecar(image)
    assert sidecar['build_hash'] == first['Build hash']
    assert sidecar['build_path'] == first['Build path']
    # The sdist is no git checkout: no commit, the tree's path.
    assert sidecar['agent']['source'] == first['Guest agent'] == (
        f'tree:{tree}')
    assert sidecar['agent']['version'] == trove_tree.release()
    assert sidecar['inputs']['guest_agent'] == (
        'local:' + sidecar['agent']['digest'])


@pytest.fixture(scope='module')
def second(first, tree, image):
    trove_tree.set_agent_marker(tree, f'two-{SESSION}')
    result = _build(image, tree)
    print(f'agent-only rebuild: {result["seconds"]:.1f} s')
    return result


def test_agent_only_change_takes_the_agent_only_path(first, second, image,
                                                     tmp_path):
    assert second['Build path'] == builder.AGENT_ONLY
    assert second['Skipped'] is False
    assert second['Build hash'] != first['Build hash']
    sidecar = _sidecar(image)
    assert sidecar['build_hash'] == second['Build hash']
    assert sidecar['previous_sha256'] == first['SHA256']
    assert sidecar['sha256'] == second['SHA256'] == pathlib.Path(
        f'{image}.sha256').read_text().split()[0]
    assert pathlib.Path(f'{image}.build-hash').read_text().strip() == (
        second['Build hash'])
    agent = _agent_in(image, tmp_path)
    assert f'two-{SESSION}' in agent and f'one-{SESSION}' not in agent
    assert _dead_builds_left(image.parent) == []
    again = _build(image, pathlib.Path(sidecar['agent']['path']))
    assert again['Skipped'] is True and again['Build path'] == (
        builder.SKIPPED)


def test_the_image_stays_a_valid_qcow2(second, image):
    check = json.loads(subprocess.run(
        ['qemu-img', 'check', '--output=json', str(image)],
        capture_output=True, text=True, check=True).stdout)
    assert check.get('corruptions', 0) == 0 and check.get('leaks', 0) == 0


def test_a_broken_tree_is_one_line_and_nothing_is_made(build_host,
                                                       tmp_path):
    broken = trove_tree.make_tree(tmp_path / 'tree', break_agent=True)
    out = tmp_path / 'out'
    result = helpers.run('trove-image-builder', '-q', '--guest-agent-source',
                         'local', '--guest-agent-path', broken, '--output',
                         out / 'broken.qcow2', check=False)
    assert result.returncode != 0
    lines = support.error_lines(result)
    assert len(lines) == 1, result.stderr
    assert 'trove/cmd/guest.py line' in lines[0]
    assert 'does not compile' in lines[0]
    assert not out.exists() or list(out.iterdir()) == []
    assert nothing_left(tmp_path) == {}


def test_load_shows_the_agent_in_glance_properties(second, image, tree,
                                                   local_cloud):
    _, data = support.load(local_cloud, image, support.unique('mariadb'),
                           '11.8', '--manager', 'mariadb')
    shown = support.cli_json(local_cloud, 'image', 'show', data['image_id'])
    properties = shown['properties']
    agent = _sidecar(image)['agent']
    assert properties['trove_agent_source'] == f'tree:{tree}'
    assert properties['trove_agent_version'] == trove_tree.release()
    assert properties['trove_agent_digest'] == agent['digest']
    assert properties['trove_build_hash'] == second['Build hash']


def _copy_image(image, dest):
    """The image with its records in ``dest`` (still up to date)."""
    dest.mkdir(parents=True)
    return guest_images.copy_image(image, dest / image.name)


@pytest.mark.parametrize('signum', [signal.SIGTERM, signal.SIGKILL])
def test_killed_agent_step_leaves_nothing(second, image, tree, tmp_path,
                                          signum):
    """Killed while the image is exported, attached and mounted: after
    SIGTERM the build tears it all down itself, after SIGKILL
    `trovestack clean` does; the previous image stays as it was."""
    out = tmp_path / 'out'
    copy = _copy_image(image, out)
    before = _sidecar(copy)
    trove_tree.set_agent_marker(tree, f'killed-{SESSION}')
    try:
        build = Build(out, 'trove-image-builder', '--datastore', 'mariadb',
                      '--guest-agent-source', 'local', '--guest-agent-path',
                      tree, '--output', copy)

        def mounted():
            work = build.workdir()
            return work is not None and len(build.mounts()) >= 2

        build.wait_for('the image mounted by the agent step', mounted)
        build.kill(signum)
        if signum == signal.SIGKILL:
            left = leftovers(out)
            assert left['mounts'] and left['work dirs'], left
            rows = clean_builds()
            assert rows[left['work dirs'][0]]['Action'] == 'deleted', rows
        assert nothing_left(out) == {}
        assert _sidecar(copy) == before
        assert builder.is_up_to_date(copy, before['build_hash'])
    finally:
        trove_tree.set_agent_marker(tree, f'two-{SESSION}')
        os.sync()
