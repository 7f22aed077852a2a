"""The local cloud runs a given Trove tree (``cloud up --trove-source``).

A cloud of its own (not the session's: its Trove changes), API only, with
the test tree (tests/trove_tree.py: the pinned trove sdist unpacked, its API
marker in ``GET /`` of trove-api).  The tests run in order on it: the tree
runs; a code change is picked up by ``cloud restart trove`` and by ``cloud
up``, restarting nothing else; a git checkout shows its commit and its
uncommitted changes; a tree with a requirement pip cannot meet is a
one-line error and the previous tree keeps running; ``release`` (here from
$TROVESTACK_TROVE_SOURCE) goes back to the venv's trove.
"""

import json
import os
import subprocess
import types
import urllib.request

import pytest

from tests import trove_tree
from tests.helpers import BIN
from tests.helpers import run
from tests.helpers import run_json
from trovestack.cloud import layout

TROVE = ('trove', 'trove-taskmanager', 'trove-conductor')
MISSING = 'trovestack-no-such-lib>=1'
# A requirement the venv does not meet (small, pure Python): pip adds it to
# the tree's environment, not to the venv.
EXTRA = 'aenum'


@pytest.fixture(scope='module')
def cloud(tmp_path_factory):
    state_dir = tmp_path_factory.mktemp('tree-cloud')
    tree = trove_tree.make_tree(tmp_path_factory.mktemp('tree'),
                                api_marker='A')
    with open(tree / 'requirements.txt', 'a') as requirements:
        requirements.write(f'{EXTRA}\n')
    up = ('trovestack', 'cloud', 'up', '--state-dir', state_dir,
          '--base-port', '0', '--clouds-yaml', state_dir / 'clouds.yaml')
    try:
        rows = run_json(*up, '--trove-source', tree)
        yield types.SimpleNamespace(
            state_dir=state_dir, tree=tree, up=up, rows=rows,
            work=tmp_path_factory.mktemp('trees'),
            port=layout.Layout(state_dir).load_state().ports['trove'])
    finally:
        run('trovestack', 'cloud', 'down', '--state-dir', state_dir,
            check=False)


def _marker(cloud):
    """The API marker trove-api answers with (None: the release's)."""
    url = f'http://{layout.HOST}:{cloud.port}/'
    with urllib.request.urlopen(url, timeout=10) as response:
        versions = json.load(response)['versions']
    return {version.get(trove_tree.API_FIELD) for version in versions}.pop()


def _status(cloud):
    return {row['Service']: row for row in run_json(
        'trovestack', 'cloud', 'status', '--state-dir', cloud.state_dir)}


def _pids(rows):
    rows = rows.values() if isinstance(rows, dict) else rows
    return {row['Service']: row['PID'] for row in rows}


def test_up_runs_trove_from_the_tree(cloud):
    assert {row['State'] for row in cloud.rows} == {'running'}
    assert _marker(cloud) == 'A'
    status = _status(cloud)
    for name in TROVE:
        assert status[name]['Code'] == f'trove 26.0.0 from {cloud.tree}'
    assert status['keystone']['Code'] == ''
    # Trove's own calls work from the tree (through Keystone, its DB).
    env = dict(os.environ, OS_CLIENT_CONFIG_FILE=str(
        cloud.state_dir / 'clouds.yaml'))
    env.pop('OS_CLOUD', None)
    assert isinstance(run_json('openstack', '--os-cloud', 'trovestack-admin',
                               'datastore', 'list', env=env), list)
    # The venv still holds the release and nothing more: pip installed
    # what the tree needs beyond it into the tree's environment only.
    code = ('import importlib.metadata as m, trove, sys; '
            'print(m.version("trove"), trove.__file__); '
            'print(m.version(sys.argv[1]))')
    venv = subprocess.run([str(BIN / 'python'), '-c', code, EXTRA],
                          capture_output=True, text=True)
    assert venv.returncode != 0 and 'PackageNotFoundError' in venv.stderr
    release, where = venv.stdout.split()
    assert release == trove_tree.release()
    assert str(cloud.tree) not in where
    env, = [path for path in (cloud.state_dir / 'trove-env').iterdir()
            if path.is_dir()]
    ours = subprocess.run([str(env / 'bin' / 'python'), '-c', code, EXTRA],
                          capture_output=True, text=True, check=True)
    assert ours.stdout.split()[1] == str(cloud.tree / 'trove' /
                                         '__init__.py')


def test_restart_trove_restarts_only_trove(cloud):
    """A change of the database code runs Trove's db_sync (with the
    tree's code) before its services start again."""
    before = _pids(_status(cloud))
    trove_tree.set_api_marker(cloud.tree, 'B')
    setup_log = cloud.state_dir / 'logs' / 'trove-setup.log'
    logged = setup_log.stat().st_size
    with open(cloud.tree / 'trove' / 'db' / '__init__.py', 'a') as db:
        db.write('# changed by the test\n')
    assert _status(cloud)['trove']['Code'].endswith(
        'changed since Trove started (trovestack cloud restart trove)')
    rows = run_json('trovestack', 'cloud', 'restart', 'trove',
                    '--state-dir', cloud.state_dir)
    assert {row['State'] for row in rows} == {'running'}
    after = _pids(rows)
    assert _marker(cloud) == 'B'
    assert setup_log.stat().st_size > logged, 'no db_sync'
    for name, pid in before.items():
        if name in TROVE:
            assert after[name] != pid, name
        else:
            assert after[name] == pid, name
    assert _status(cloud)['trove']['Code'] == f'trove 26.0.0 from {cloud.tree}'


def test_up_notices_the_tree_changed(cloud):
    before = _pids(_status(cloud))
    trove_tree.set_api_marker(cloud.tree, 'C')
    after = _pids(run_json(*cloud.up))
    assert _marker(cloud) == 'C'
    assert {name for name in before if after[name] != before[name]} == \
        set(TROVE)
    # Nothing changed: nothing restarts.
    assert _pids(run_json(*cloud.up)) == after


def test_a_git_tree_shows_its_commit_and_uncommitted_changes(cloud):
    def git(*args):
        return subprocess.run(
            ['git', '-C', str(cloud.tree), '-c', 'user.name=t',
             '-c', 'user.email=t@example.com', *args],
            capture_output=True, text=True, check=True).stdout.strip()

    git('init', '-q')
    git('add', '-A')
    git('commit', '-q', '-m', 'the tree')
    commit = git('rev-parse', 'HEAD')
    assert _status(cloud)['trove']['Code'] == (
        f'trove 26.0.0 from {cloud.tree} at {commit[:12]}')
    readme = cloud.tree / 'README.rst'
    readme.write_text(readme.read_text() + '\nchanged\n')
    assert _status(cloud)['trove-conductor']['Code'] == (
        f'trove 26.0.0 from {cloud.tree} at {commit[:12]} '
        f'(uncommitted changes)')


def test_an_unmeetable_requirement_keeps_the_previous_trove(cloud):
    bad = trove_tree.make_tree(cloud.work / 'bad', api_marker='D')
    with open(bad / 'requirements.txt', 'a') as requirements:
        requirements.write(f'{MISSING}\n')
    before = _pids(_status(cloud))
    result = run(*cloud.up, '--trove-source', bad, check=False)
    assert result.returncode == 1
    error = result.stderr.strip()
    assert len(error.splitlines()) == 1, error
    assert MISSING in error and str(bad) in error
    log = cloud.state_dir / 'logs' / 'trove-env.log'
    assert str(log) in error and MISSING in log.read_text()
    status = _status(cloud)
    assert status['trove']['Code'].startswith(
        f'trove 26.0.0 from {cloud.tree} at ')
    assert _pids(status) == before
    assert _marker(cloud) == 'C'
    # The failed environment was not kept: only the tree's own is there.
    assert len([path for path in (cloud.state_dir / 'trove-env').iterdir()
                if path.is_dir()]) == 1


def test_release_goes_back_to_the_venvs_trove(cloud):
    env = dict(os.environ, TROVESTACK_TROVE_SOURCE='release')
    result = run(*cloud.up, '-f', 'json', env=env)
    rows = {row['Service']: row for row in json.loads(result.stdout)}
    assert rows['trove']['Code'] == f'trove {trove_tree.release()} (release)'
    assert _marker(cloud) is None
    assert not [path for path in (cloud.state_dir / 'trove-env').iterdir()
                if path.is_dir()]
    # Remembered: a plain up keeps the release.
    assert _status(cloud)['trove']['Code'] == rows['trove']['Code']
