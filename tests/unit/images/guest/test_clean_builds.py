"""`trovestack clean` sweeps what killed image builds left on this host;
with --builds-only it needs no cloud."""

import json
import subprocess
import time

import pytest

from trovestack.commands import clean
from trovestack.common import connection
from trovestack.common import workdirs
from trovestack.images.datastore import builder as datastore_builder
from trovestack.images.guest import builder as image_builder
from trovestack.orchestration import cleanup


class FakeApp:
    class options:
        verbose_level = 0


def _dead_dir(path):
    proc = subprocess.Popen(['true'])
    proc.wait()
    path.mkdir(parents=True)
    (path / workdirs.OWNER_FILE).write_text(json.dumps(
        {'pid': proc.pid, 'started': time.time()}))
    return path


@pytest.fixture
def caches(tmp_path, monkeypatch):
    guest = tmp_path / 'guest-cache'
    datastore = tmp_path / 'datastore-cache'
    monkeypatch.setattr(image_builder, 'default_cache_dir', lambda: guest)
    monkeypatch.setattr(datastore_builder, 'default_output_dir',
                        lambda: datastore)
    return guest, datastore


def test_clean_builds_takes_dead_work_dirs_of_both_builders(caches):
    guest, datastore = caches
    dead_guest = _dead_dir(guest / 'images' / '.build-1-abc')
    dead_layer = _dead_dir(datastore / 'base-layers'
                           / '.mariadb-11.8-rootfs.tar.build-2-abc')
    other = datastore / '.something-else.build-3-abc'
    other.mkdir(parents=True)
    planned = cleanup.clean_builds(dry_run=True)
    assert {row.name: row.action for row in planned.rows} == {
        str(dead_guest): 'would-delete', str(dead_layer): 'would-delete'}
    assert dead_guest.exists()
    done = cleanup.clean_builds()
    assert {row.kind for row in done.rows} == {cleanup.BUILD_WORK_DIR}
    assert done.failures == 0
    assert not dead_guest.exists() and not dead_layer.exists()
    assert other.exists()


def test_builds_only_uses_no_cloud(caches, monkeypatch):
    guest, _ = caches
    dead = _dead_dir(guest / 'images' / '.build-1-abc')

    def no_cloud(*args, **kwargs):
        raise AssertionError('no cloud needed')
    monkeypatch.setattr(connection, 'command_connection', no_cloud)
    command = clean.CleanCloud(FakeApp(), None)
    parsed = command.get_parser('clean').parse_args(['--builds-only'])
    headers, rows = command.take_action(parsed)
    (row,) = rows
    assert row[:2] == (cleanup.BUILD_WORK_DIR, str(dead))
    assert row[3] == 'deleted'
    assert not dead.exists()
