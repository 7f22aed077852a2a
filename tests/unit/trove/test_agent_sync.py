"""trovestack.trove.agent_sync and ``trovestack instance sync-agent``.

The guest is this machine: its scripts run under bash with ``sudo``,
``systemctl`` and ``journalctl`` stubbed, the agent's "virtualenv" a
directory whose ``python`` imports the ``trove`` package of a fake
site-packages, so that the copy, the swap and the restore run for real on
files.
"""

import datetime
import importlib.util
import io
import json
import marshal
import os
import pathlib
import sqlite3
import sys
import tarfile
from unittest import mock

import pytest

from trovestack.cloud import trove_source
from trovestack.commands import cliapp
from trovestack.commands import instance as commands
from trovestack.trove import agent_sync

UNIT = 'guest-agent.service'
TARGET = agent_sync.Target(name='demo', instance_id='inst-1',
                           server_id='srv-1', address='10.0.0.5')

SYSTEMCTL = r'''#!/bin/bash
# A stub of systemctl for one unit; its state in $STATE_DIR.
state=$STATE_DIR
case "$1" in
restart)
    echo restart >> "$state/calls"
    pid=$(( $(cat "$state/pid") + 1 ))
    echo "$pid" > "$state/pid"
    cp "$state/after-restart" "$state/unit" 2>/dev/null || true
    ;;
show)
    shift
    value=no
    props=()
    while [ $# -gt 0 ]; do
        case "$1" in
        -p) props+=("$2"); shift 2;;
        --value) value=yes; shift;;
        *) shift;;
        esac
    done
    for p in "${props[@]}"; do
        case "$p" in
        ExecStart) v="{ path=$VENV/bin/trove-guestagent ; argv[]=x }";;
        MainPID) v=$(cat "$state/pid");;
        *) v=$(sed -n "s/^$p=//p" "$state/unit");;
        esac
        if [ $value = yes ]; then echo "$v"; else echo "$p=$v"; fi
    done
    ;;
esac
'''


class LocalGuest(agent_sync.Guest):
    """The guest's scripts run here (no SSH)."""

    def __init__(self):
        super().__init__(where=None, address='10.0.0.5')
        self.scripts = []

    def _argv(self, script, *, master=False, stop=False):
        self.scripts.append(script)
        return ['bash', '-c', script]


class Trove:
    """python-troveclient's databases.list: fails ``failures`` times, then
    answers (never, with failures=None)."""

    def __init__(self, failures=0):
        self.failures = failures
        self.calls = 0
        self.databases = self

    def list(self, instance_id):
        assert instance_id == TARGET.instance_id
        self.calls += 1
        if self.failures is None or self.calls <= self.failures:
            raise RuntimeError('Timed out waiting for a reply')
        return []


@pytest.fixture
def guest_host(tmp_path, monkeypatch):
    """A fake guest: stubbed commands first on PATH, the agent's venv and
    its site-packages with an installed (old) trove package."""
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    state = tmp_path / 'state'
    state.mkdir()
    (state / 'pid').write_text('100\n')
    (state / 'unit').write_text('ActiveState=active\nSubState=running\n'
                                'ExecMainStatus=0\nNRestarts=0\n')
    (state / 'after-restart').write_text(
        'ActiveState=active\nSubState=running\nExecMainStatus=0\n'
        'NRestarts=0\n')
    python_dir = 'python%d.%d' % sys.version_info[:2]
    site = tmp_path / 'venv' / 'lib' / python_dir / 'site-packages'
    (site / 'trove').mkdir(parents=True)
    (site / 'trove' / '__init__.py').write_text('OLD = True\n')
    venv_bin = tmp_path / 'venv' / 'bin'
    venv_bin.mkdir()
    python = venv_bin / 'python'
    python.write_text(f'#!/bin/sh\nPYTHONPATH={site} exec {sys.executable} '
                      '"$@"\n')
    python.chmod(0o755)
    stubs = {
        'sudo': '#!/bin/sh\nexec "$@"\n',
        'systemctl': SYSTEMCTL,
        'journalctl': '#!/bin/sh\necho "agent: Traceback: ImportError"\n'
                      'echo "sudo: pam_unix(sudo:session): noise"\n',
    }
    for name, text in stubs.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    monkeypatch.setenv('PATH', f'{bin_dir}:{os.environ["PATH"]}')
    monkeypatch.setenv('STATE_DIR', str(state))
    monkeypatch.setenv('VENV', str(tmp_path / 'venv'))
    monkeypatch.setattr(agent_sync, 'POLL', 0.05)
    monkeypatch.setattr(agent_sync, 'HEARTBEAT_POLL', 0.01)
    return mock.Mock(site=site, state=state, python=python)


def _tree(root, *, broken=False, marker='new'):
    """A small Trove source tree: a package with a subpackage, tests, data
    and byte code that must not travel."""
    tree = root / 'trove-src'
    package = tree / 'trove'
    (package / 'cmd').mkdir(parents=True)
    (package / 'tests').mkdir()
    (package / 'templates').mkdir()
    (package / '__pycache__').mkdir()
    (tree / 'setup.cfg').write_text('[metadata]\nname = trove\n')
    (package / '__init__.py').write_text(f'MARKER = {marker!r}\n')
    (package / 'cmd' / '__init__.py').write_text('')
    (package / 'cmd' / 'guest.py').write_text(
        'def main(:\n' if broken else 'def main():\n    return 1\n')
    (package / 'tests' / 'test_x.py').write_text('')
    (package / 'templates' / 'my.cnf.template').write_text('[mysqld]\n')
    (package / '__pycache__' / 'stale.cpython-311.pyc').write_bytes(b'x')
    return tree


def _installed_marker(guest_host):
    out = agent_sync.Guest.run(
        LocalGuest(), f'{guest_host.python} -c "import trove; '
        'print(getattr(trove, \'MARKER\', \'old\'))"')
    return out.strip()


# -- packing ---------------------------------------------------------------

def test_package_files_leave_tests_and_byte_code_out(tmp_path):
    tree = _tree(tmp_path)
    names = [name for _, name in agent_sync.package_files(tree)]
    assert names == ['trove/__init__.py', 'trove/cmd/__init__.py',
                     'trove/cmd/guest.py',
                     'trove/templates/my.cnf.template']


def test_pack_with_byte_code_checked_by_hash(tmp_path):
    tree = _tree(tmp_path)
    tag = sys.implementation.cache_tag
    data, files = agent_sync.pack(tree, cache_tag=tag,
                                  package_dir='/venv/site/trove')
    assert files == 4
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = {m.name: m for m in tar.getmembers()}
        pyc = tar.extractfile(f'trove/cmd/__pycache__/guest.{tag}.pyc').read()
    assert f'trove/__pycache__/__init__.{tag}.pyc' in members
    assert 'trove/__pycache__/stale.cpython-311.pyc' not in members
    assert all(m.uid == 0 and m.uname == 'root' for m in members.values())
    assert members['trove/cmd/guest.py'].mode == 0o644
    assert pyc[:4] == importlib.util.MAGIC_NUMBER
    assert int.from_bytes(pyc[4:8], 'little') == 0b11  # checked hash
    code = marshal.loads(pyc[16:])
    assert code.co_filename == '/venv/site/trove/cmd/guest.py'


def test_pack_without_cache_tag_sends_sources_only(tmp_path):
    data, files = agent_sync.pack(_tree(tmp_path))
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        assert not [n for n in tar.getnames() if n.endswith('.pyc')]
    assert files == 4


# -- the sync on a (local) guest -------------------------------------------

def test_sync_swaps_the_package_and_waits_for_an_answer(tmp_path,
                                                        guest_host):
    tree = _tree(tmp_path)
    guest, lines = LocalGuest(), []
    result = agent_sync.sync(tree, TARGET, guest, Trove(failures=2),
                             source='trove from tree', progress=lines.append)
    site = guest_host.site
    assert (site / 'trove' / 'cmd' / 'guest.py').read_text().startswith(
        'def main():')
    assert (site / '.trove.previous' / '__init__.py').read_text() == \
        'OLD = True\n'
    assert not (site / 'trove' / 'tests').exists()
    assert not list(site.glob('.trove.sync-*'))
    assert _installed_marker(guest_host) == 'new'
    assert (guest_host.state / 'calls').read_text() == 'restart\n'
    assert result.compiled_here
    assert result.package_dir == str(site / 'trove')
    assert result.previous == str(site / '.trove.previous')
    assert list(result.seconds) == ['check', 'locate', 'pack', 'copy',
                                    'restart', 'start-up']
    assert list(result.timeline) == ['checked', 'located', 'packed',
                                     'copied', 'restarted', 'answered']
    assert result.total == result.timeline['answered']
    assert (result.files, result.answered_by) == (4, 'database list')
    assert any('restarted at' in line and 'pid 101' in line
               for line in lines), lines
    assert all(line.startswith('instance demo: ') for line in lines)


def test_a_second_sync_replaces_the_previous_one(tmp_path, guest_host):
    agent_sync.sync(_tree(tmp_path / 'a', marker='one'), TARGET,
                    LocalGuest(), Trove())
    agent_sync.sync(_tree(tmp_path / 'b', marker='two'), TARGET,
                    LocalGuest(), Trove())
    assert _installed_marker(guest_host) == 'two'
    assert "'one'" in (guest_host.site / '.trove.previous'
                       / '__init__.py').read_text()


def test_a_staging_directory_left_by_an_interrupted_sync_goes(
        tmp_path, guest_host):
    left = guest_host.site / '.trove.sync-abc123' / 'trove'
    left.mkdir(parents=True)
    agent_sync.sync(_tree(tmp_path), TARGET, LocalGuest(), Trove())
    assert not list(guest_host.site.glob('.trove.sync-*'))


def test_another_python_compiles_on_the_guest(tmp_path, guest_host,
                                              monkeypatch):
    monkeypatch.setattr(agent_sync, 'locate', _other_magic(
        agent_sync.locate))
    guest = LocalGuest()
    result = agent_sync.sync(_tree(tmp_path), TARGET, guest, Trove())
    assert not result.compiled_here
    assert any('compileall' in script for script in guest.scripts)
    tag = sys.implementation.cache_tag
    assert (guest_host.site / 'trove' / 'cmd' / '__pycache__'
            / f'guest.{tag}.pyc').exists()


def _other_magic(locate):
    def other(guest):
        import dataclasses
        return dataclasses.replace(locate(guest), cache_tag='cpython-99')
    return other


def test_a_broken_tree_copies_nothing(tmp_path, guest_host):
    guest = LocalGuest()
    with pytest.raises(agent_sync.SyncError) as error:
        agent_sync.sync(_tree(tmp_path, broken=True), TARGET, guest,
                        Trove())
    message = str(error.value)
    assert message.startswith('instance demo: nothing copied: ')
    assert 'trove/cmd/guest.py line 1 does not compile' in message
    assert guest.scripts == []
    assert _installed_marker(guest_host) == 'old'


def test_an_agent_that_exits_after_its_restart_is_named(tmp_path,
                                                        guest_host):
    (guest_host.state / 'after-restart').write_text(
        'ActiveState=activating\nSubState=auto-restart\n'
        'ExecMainStatus=1\nNRestarts=1\n')
    with pytest.raises(agent_sync.SyncError) as error:
        agent_sync.sync(_tree(tmp_path), TARGET, LocalGuest(),
                        Trove(failures=None), timeout=30)
    message = str(error.value)
    assert 'the agent exited after its restart (activating/auto-restart, ' \
           'exit status 1)' in message
    assert 'sync-agent demo --restore' in message
    details = error.value.details
    assert 'Traceback: ImportError' in details
    assert 'pam_unix' not in details
    assert 'journal of guest-agent.service' in details


def test_an_agent_that_does_not_answer_in_time_is_named(tmp_path,
                                                        guest_host):
    with pytest.raises(agent_sync.SyncError) as error:
        agent_sync.sync(_tree(tmp_path), TARGET, LocalGuest(),
                        Trove(failures=None), timeout=0.2)
    assert 'did not answer within 0.2 s (last: Timed out waiting for a ' \
           'reply)' in str(error.value)
    assert 'ActiveState=active' in error.value.details


def test_restore_puts_the_previous_agent_back(tmp_path, guest_host):
    agent_sync.sync(_tree(tmp_path), TARGET, LocalGuest(), Trove())
    seconds = agent_sync.restore(LocalGuest(), TARGET, trove=Trove())
    assert _installed_marker(guest_host) == 'old'
    assert "'new'" in (guest_host.site / '.trove.previous'
                       / '__init__.py').read_text()
    assert list(seconds) == ['copy', 'restart', 'start-up']
    assert (guest_host.state / 'calls').read_text() == 'restart\n' * 2


def test_restore_without_a_previous_agent_fails(guest_host):
    with pytest.raises(agent_sync.GuestError) as error:
        agent_sync.restore(LocalGuest(), TARGET)
    assert 'putting' in str(error.value) and '.trove.previous back' in \
        str(error.value)
    assert _installed_marker(guest_host) == 'old'


def test_a_missing_agent_is_named(guest_host, monkeypatch):
    monkeypatch.setenv('VENV', '/nonexistent')
    monkeypatch.setattr(agent_sync, 'DEFAULT_VENV', '/nonexistent')
    with pytest.raises(agent_sync.GuestError) as error:
        agent_sync.locate(LocalGuest())
    assert "no guest agent's trove package found" in str(error.value)


# -- the heartbeat ------------------------------------------------------------

def _trove_db(path, updated_at):
    with sqlite3.connect(path) as db:
        db.execute('CREATE TABLE service_statuses (id TEXT, instance_id '
                   'TEXT, status_id INT, updated_at DATETIME)')
        db.execute('INSERT INTO service_statuses VALUES (?, ?, ?, ?)',
                   ('s1', TARGET.instance_id, 1, updated_at))


def test_sqlite_heartbeats_reads_conductors_record(tmp_path):
    _trove_db(tmp_path / 'trove.db', '2026-12-06 11:00:00.250000')
    last = agent_sync.sqlite_heartbeats(tmp_path / 'trove.db')
    assert last(TARGET.instance_id) == datetime.datetime(
        2026, 12, 6, 11, 0, 0, 250000)
    assert last('other') is None


def test_sync_waits_for_the_first_heartbeat_after_the_restart(
        tmp_path, guest_host):
    beats = iter([None, datetime.datetime(2000, 1, 1)])

    def heartbeats(instance_id):
        return next(beats, datetime.datetime(2999, 1, 1))

    result = agent_sync.sync(_tree(tmp_path), TARGET, LocalGuest(), Trove(),
                             heartbeats=heartbeats)
    assert list(result.timeline)[-1] == 'heartbeat'
    assert result.total == result.timeline['heartbeat']


def test_no_heartbeat_is_a_named_failure(tmp_path, guest_host):
    with pytest.raises(agent_sync.SyncError) as error:
        agent_sync.sync(_tree(tmp_path), TARGET, LocalGuest(), Trove(),
                        heartbeats=lambda _: None, timeout=0.1)
    assert 'recorded no heartbeat' in str(error.value)


# -- the tree ---------------------------------------------------------------

def test_a_cloud_on_the_release_without_source_is_one_line(monkeypatch):
    monkeypatch.setattr(trove_source, 'of_cloud', lambda state_dir: (
        trove_source.TroveSource(version='26.0.0')))
    with pytest.raises(agent_sync.SyncError) as error:
        agent_sync.tree_of(None, '/state')
    assert str(error.value) == (
        'the cloud runs trove 26.0.0 (release), not a source tree: give the '
        'tree to sync with --source DIR (or start the cloud with '
        '"trovestack cloud up --trove-source DIR")')


def test_the_clouds_tree_is_the_default(tmp_path, monkeypatch):
    tree = _tree(tmp_path)
    monkeypatch.setattr(trove_source, 'of_cloud', lambda state_dir: (
        trove_source.of_tree(tree)))
    path, described = agent_sync.tree_of(None, '/state')
    assert path == tree
    assert described.startswith('trove unknown from') or str(tree) in \
        described


def test_source_that_is_not_a_tree_is_refused(tmp_path):
    with pytest.raises(trove_source.LocalCloudError):
        agent_sync.tree_of(str(tmp_path), None)


# -- the command ------------------------------------------------------------

RESULT = agent_sync.SyncResult(
    name='demo', id='inst-1', address='10.0.0.5', source='trove from /t',
    package_dir='/opt/v/site/trove', previous='/opt/v/site/.trove.previous',
    files=285, bytes=1200000, compiled_here=True, answered_by='database list',
    seconds={'check': 1.0, 'copy': 3.0}, timeline={'answered': 20.0})


def _app():
    return cliapp.SingleCommandApp('trovestack-sync-agent',
                                   commands.InstanceSyncAgent, 'sync-agent')


def test_command_calls_the_library_and_prints_json(capsys):
    with mock.patch.object(agent_sync, 'sync_agent',
                           return_value=RESULT) as sync:
        assert _app().run(['db1', '--source', '/t', '--timeout', '90',
                           '--state-dir', '/s', '--heartbeat',
                           '-f', 'json']) == 0
    args, kwargs = sync.call_args
    assert args == ('db1',)
    assert (kwargs['source'], kwargs['timeout'], kwargs['state_dir'],
            kwargs['heartbeat'], kwargs['conn']) == ('/t', 90, '/s', True,
                                                      None)
    shown = json.loads(capsys.readouterr().out)
    assert shown['Package'] == '/opt/v/site/trove'
    assert shown['Seconds'] == {'check': 1.0, 'copy': 3.0}
    assert shown['Answered by'] == 'database list'


def test_command_restore(capsys):
    with mock.patch.object(agent_sync, 'restore_agent',
                           return_value={'copy': 1.0}) as restore:
        assert _app().run(['--restore', '-f', 'json']) == 0
    assert restore.call_args.args == ('demo',)
    assert json.loads(capsys.readouterr().out)['Action'] == 'restored'


def test_command_failure_is_one_line_and_its_journal(capsys):
    error = agent_sync.SyncError('instance demo: the agent exited',
                                 '-- journal\nTraceback')
    with mock.patch.object(agent_sync, 'sync_agent', side_effect=error):
        assert _app().run(['demo']) == 1
    err = capsys.readouterr().err
    assert 'instance demo: the agent exited' in err
    assert 'Traceback' in err


def test_the_real_trees_agent_module_is_packed(tmp_path):
    """The pinned trove's own package: its agent module goes, its tests do
    not (skipped when the sdist is not cached)."""
    from tests import trove_tree

    try:
        tree = trove_tree.make_tree(tmp_path, agent_marker='m')
    except AssertionError as exc:
        pytest.skip(str(exc))
    names = {name for _, name in agent_sync.package_files(tree)}
    assert 'trove/cmd/guest.py' in names
    assert 'trove/templates/mariadb/config.template' in names
    assert not [n for n in names if n.startswith('trove/tests/')]
    assert pathlib.Path(tree, 'trove', 'tests').is_dir()


# -- the instance ------------------------------------------------------------

def _found(status='ACTIVE', server_id='srv-1'):
    found = mock.Mock(id='inst-1', status=status)
    vars(found)['server_id'] = server_id
    return found


@pytest.fixture
def target_clients(monkeypatch):
    from trovestack.common import connection
    from trovestack.trove import instances

    find = mock.Mock(return_value=_found())
    monkeypatch.setattr(connection, 'trove_client', lambda conn: 'lister')
    monkeypatch.setattr(instances, 'find_instance', find)
    monkeypatch.setattr(agent_sync, '_patient_client',
                        lambda conn: 'patient')
    admin = mock.Mock()
    admin.compute.get_server.return_value = mock.Mock(
        id='srv-1', addresses={'trove-mgmt': [{'addr': '10.0.0.5'}],
                               'private': [{'addr': '10.1.0.5'}]})
    return find, admin


def test_find_target_of_an_active_instance(target_clients):
    find, admin = target_clients
    target, trove = agent_sync.find_target('conn', admin, 'demo')
    assert target == TARGET
    assert trove == 'patient'
    assert find.call_args.args == ('lister', 'demo')
    admin.compute.get_server.assert_called_once_with('srv-1')


@pytest.mark.parametrize('found, message', [
    (None, 'instance demo: there is no Trove instance of that name'),
    (_found(status='BUILD'), 'instance demo: it is BUILD, not ACTIVE'),
])
def test_find_target_refuses(target_clients, found, message):
    find, admin = target_clients
    find.return_value = found
    with pytest.raises(agent_sync.SyncError) as error:
        agent_sync.find_target('conn', admin, 'demo')
    assert str(error.value).startswith(message)


def test_find_target_without_a_management_address(target_clients):
    _, admin = target_clients
    admin.compute.get_server.return_value = mock.Mock(
        id='srv-1', addresses={'private': [{'addr': '10.1.0.5'}]})
    with pytest.raises(agent_sync.SyncError) as error:
        agent_sync.find_target('conn', admin, 'demo')
    assert 'no address on the management network' in str(error.value)


def test_sync_agent_checks_the_tree_before_asking_the_cloud(tmp_path,
                                                          monkeypatch):
    tree = _tree(tmp_path, broken=True)
    opened = mock.Mock()
    monkeypatch.setattr(agent_sync, 'open_guest', opened)
    with pytest.raises(agent_sync.SyncError) as error:
        agent_sync.sync_agent('demo', source=str(tree))
    assert 'nothing copied' in str(error.value)
    opened.assert_not_called()
