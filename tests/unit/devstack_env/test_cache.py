"""The staging cache: what stays, what prune removes."""

import json
import os
import time

import pytest

from trovestack.common import files
from trovestack.devstack_env import cache
from trovestack.devstack_env import container
from trovestack.devstack_env import layout
from trovestack.devstack_env import staging

HOURS = 3 * 3600


@pytest.fixture
def root(tmp_path, monkeypatch):
    monkeypatch.setenv('XDG_STATE_HOME', str(tmp_path / 'state'))
    monkeypatch.setattr(files.tempfile, 'gettempdir', lambda: str(tmp_path))
    path = tmp_path / 'cache'
    path.mkdir()
    return path


def _artifact(root, name, age=HOURS):
    path = root / name
    (path / 'sub').mkdir(parents=True)
    (path / 'sub' / 'f').write_bytes(b'x' * 10000)
    record = cache.record_path(path)
    record.write_text(json.dumps({'key': name}))
    then = time.time() - age
    os.utime(record, (then, then))
    return path


def test_prune_keeps_what_is_used_and_removes_the_rest(root, tmp_path):
    latest = _artifact(root, 'rootfs-aaaa')
    old = _artifact(root, 'rootfs-bbbb')
    recent = _artifact(root, 'wheels-cccc', age=60)
    lower = _artifact(root, 'rootfs-dddd')
    cache.write_latest(root, [latest])
    paths = layout.EnvPaths.of('e1')
    paths.root.mkdir(parents=True)
    container.save(paths, container.Record(
        name='e1', machine='m', namespace='n', lower=str(lower), merged='/m',
        address='a', cgroups=[]))
    (root / 'sdists').mkdir()

    dry = {e.name: e.kept_for for e in cache.prune(root, dry_run=True)}
    assert dry == {'rootfs-aaaa': 'used by the latest staging',
                   'rootfs-bbbb': '', 'wheels-cccc': 'used within the hour',
                   'rootfs-dddd': 'environment e1'}
    assert old.exists()

    cache.prune(root)
    assert not old.exists() and not cache.record_path(old).exists()
    assert latest.exists() and recent.exists() and lower.exists()
    assert (root / 'sdists').exists()
    # Converges: nothing more to remove.
    assert all(e.kept_for for e in cache.prune(root))


def test_what_a_running_container_uses_stays(root, monkeypatch):
    bound = _artifact(root, 'apt-ffff')
    _artifact(root, 'apt-ffff0')
    monkeypatch.setattr(cache, '_running_uses', lambda: (
        f'systemd-nspawn --bind-ro={bound}:/srv/trovestack/apt -b'))
    kept = {e.name: e.kept_for for e in cache.entries(root)}
    assert kept == {'apt-ffff': 'used by a running container',
                    'apt-ffff0': ''}


def test_an_artifact_being_built_stays(root):
    building = _artifact(root, 'apt-eeee')
    with files.exclusive_lock(cache.lock_path(building)):
        kept = {e.name: e.kept_for for e in cache.entries(root)}
    assert kept == {'apt-eeee': 'being built'}


def test_using_an_artifact_marks_it(root):
    calls = []

    def build(tmp):
        calls.append(tmp)
        return 'made'

    first = staging.cached('sources', 'k' * 64, build, root=root)
    record = cache.record_path(first.path)
    os.utime(record, (0, 0))
    again = staging.cached('sources', 'k' * 64, build, root=root)
    assert (again.built, len(calls)) == (False, 1)
    assert record.stat().st_mtime > time.time() - 60
