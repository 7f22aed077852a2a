"""up/down/status chained over stubbed staging, container and stack.sh."""

import dataclasses
import pathlib

import pytest

from trovestack.common import files
from trovestack.common.errors import UserError
from trovestack.devstack_env import ceph
from trovestack.devstack_env import container
from trovestack.devstack_env import environment
from trovestack.devstack_env import guest
from trovestack.devstack_env import layout
from trovestack.devstack_env import stack
from trovestack.devstack_env import staging
from trovestack.images.guest import builder
from trovestack.orchestration import kickstart

DEVSTACK = pathlib.Path('/work/shared/devstack')


@pytest.fixture
def state(tmp_path, monkeypatch):
    monkeypatch.setenv('XDG_STATE_HOME', str(tmp_path / 'state'))
    monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path / 'cache'))
    monkeypatch.setattr(files.tempfile, 'gettempdir', lambda: str(tmp_path))
    return tmp_path


@pytest.fixture
def devstack(tmp_path):
    path = tmp_path / 'devstack'
    path.mkdir()
    for name in kickstart.DEVSTACK_MARKERS:
        (path / name).write_text('')
    return path


def _art(kind, tmp_path):
    return staging.Artifact(kind, kind * 4, tmp_path / kind, True, 3.0, 'd')


@pytest.fixture
def stubs(state, monkeypatch):
    calls = {}
    staged = staging.Staged(*[_art(k, state) for k in (
        'rootfs', 'apt', 'wheels', 'sources', 'requirements')])
    monkeypatch.setattr(staging, 'stage', lambda **kw: calls.setdefault(
        'stage', kw) and staged)
    record = container.Record(
        name='devstack', machine='trovestack-devstack',
        namespace='trovestack-ds-devstack', lower='/l', merged='/m',
        address=container.ADDRESS, cgroups=[], leader_pid=42)

    def boot(paths, lower, *, binds, prepare):
        calls['boot'] = (lower, binds)
        return container.Booted(record, 'running', 4.0)

    monkeypatch.setattr(container, 'boot', boot)
    monkeypatch.setattr(container, 'stop', lambda paths, **kw: [])
    monkeypatch.setattr(container, 'leftovers', lambda paths: [])
    calls['result'] = stack.StackResult(0, 100.0, 'Starting Trove', '', '',
                                        '/log')

    def run_stack(record, paths, secrets=()):
        calls['secrets'] = secrets
        stack.save_result(paths, calls['result'])
        return calls['result']

    monkeypatch.setattr(stack, 'run_stack', run_stack)
    monkeypatch.setattr(ceph, 'set_up', lambda record, rootfs:
                        calls.setdefault('ceph', 'ceph-mon@a'))
    image = state / 'guest.qcow2'
    image.write_bytes(b'QFI')

    def build(sample, tree, progress=None):
        calls['guest'] = (sample, tree)
        return builder.BuildResult(
            path=str(image), sha256='s', build_hash='h', skipped=False,
            log_path='', sidecar_path='', build_path=builder.AGENT_ONLY,
            agent_source=f'tree:{tree}@c0ffee')

    monkeypatch.setattr(guest, 'build', build)
    monkeypatch.setattr(stack, 'trove_checks', lambda record: [
        ('trove-api', 'HTTP 200'), ('datastore-versions', 'mariadb 11.8')])
    return calls


def _up(devstack, sample=kickstart.SAMPLES_DIR / 'mariadb.conf'):
    return environment.up(sample=sample, checkout=kickstart.REPO_ROOT,
                          devstack_dir=devstack, name='ut1')


def test_up_stages_boots_and_runs_stack(stubs, devstack, state):
    rows = _up(devstack)
    kinds = [(row.kind, row.action) for row in rows]
    assert kinds[:5] == [(k, 'created') for k in (
        'rootfs', 'apt', 'wheels', 'sources', 'requirements')]
    assert ('stack.sh', 'ran') in kinds
    assert ('check', 'ok') in kinds
    lower, binds = stubs['boot']
    assert lower == state / 'rootfs'
    assert {b.target for b in binds} >= {staging.APT_MOUNT,
                                         staging.WHEEL_MOUNT}
    assert 'tr-api' in stubs['stage']['services']
    assert stubs['secrets'] == ['secret']
    # The guest image: built here with the agent of the staged Trove tree.
    assert stubs['guest'][1] == state / 'sources' / 'trove'
    built = [row for row in rows if row.kind == 'guest-image']
    assert built and 'tree:' in built[0].detail


def test_up_with_a_placeholder_builds_no_guest_image(stubs, devstack):
    environment.up(sample=kickstart.SAMPLES_DIR / 'mariadb.conf',
                   checkout=kickstart.REPO_ROOT, devstack_dir=devstack,
                   name='ut2', placeholder=True)
    assert 'guest' not in stubs


def test_up_refuses_a_missing_guest_image(stubs, devstack, tmp_path):
    with pytest.raises(UserError, match='no guest image'):
        environment.up(sample=kickstart.SAMPLES_DIR / 'mariadb.conf',
                       checkout=kickstart.REPO_ROOT, devstack_dir=devstack,
                       name='ut3', guest_image=tmp_path / 'nothing.qcow2')
    assert 'stage' not in stubs


def test_up_failure_names_phase_and_command(stubs, devstack):
    stubs['result'] = stack.StackResult(
        1, 50.0, 'Installing Nova', 'lib/nova:1 pip install -e nova',
        'tail', '/log')
    with pytest.raises(environment.StackFailed) as err:
        _up(devstack)
    text = str(err.value)
    assert 'Installing Nova' in text and 'pip install -e nova' in text
    assert 'exit 1' in text and 'devstack down' in text


def test_up_again_after_success_changes_nothing(stubs, devstack, state,
                                                monkeypatch):
    _up(devstack)
    paths = layout.EnvPaths.of('ut1')
    container.save(paths, container.Record(
        name='devstack', machine='m', namespace='n', lower='/l', merged='/m',
        address='a', cgroups=[], leader_pid=42))
    monkeypatch.setattr(container, 'alive', lambda record: True)
    stubs.pop('boot')
    rows = _up(devstack)
    assert rows[-1].action == 'unchanged' and 'boot' not in stubs


def test_up_refuses_a_missing_sample(stubs, devstack, tmp_path):
    with pytest.raises(UserError, match='no sample'):
        _up(devstack, tmp_path / 'nope.conf')


def test_up_refuses_a_directory_that_is_no_devstack(stubs, tmp_path):
    with pytest.raises(UserError, match='not a devstack checkout'):
        _up(tmp_path)


def test_down_of_nothing_converges(state, monkeypatch):
    # Never the real stop: names of namespaces and cgroups are global.
    monkeypatch.setattr(container, 'stop', lambda paths, **kw: [])
    monkeypatch.setattr(container, 'leftovers', lambda paths: [])
    rows = environment.down(name='ut0')
    assert [(r.kind, r.action) for r in rows] == [('environment',
                                                   'unchanged')]


def test_down_says_what_is_left(state, monkeypatch):
    monkeypatch.setattr(container, 'stop', lambda paths, **kw: [])
    monkeypatch.setattr(container, 'leftovers',
                        lambda paths: ['namespace trovestack-ds-devstack'])
    with pytest.raises(UserError, match='left behind: namespace'):
        environment.down(name='ut1')


def test_down_runs_unstack_and_clean_when_stack_ran(state, monkeypatch):
    paths = layout.EnvPaths.of('ut1')
    paths.root.mkdir(parents=True)
    container.save(paths, container.Record(
        name='devstack', machine='m', namespace='n', lower='/l', merged='/m',
        address='a', cgroups=[], leader_pid=42))
    stack.save_result(paths, stack.StackResult(0, 1.0, '', '', '', ''))
    ran = []
    monkeypatch.setattr(container, 'alive', lambda record: True)
    monkeypatch.setattr(stack, 'run_script', lambda record, script: ran.append(
        script) or type('Done', (), {'returncode': 0})())
    monkeypatch.setattr(container, 'stop', lambda paths, **kw: [])
    monkeypatch.setattr(container, 'leftovers', lambda paths: [])
    rows = environment.down(name='ut1')
    assert ran == ['unstack.sh', 'clean.sh']
    assert [r.name for r in rows] == ['unstack.sh', 'clean.sh']
    assert stack.load_result(paths) is None


def test_status_of_an_absent_environment(state, monkeypatch):
    monkeypatch.setattr(container, 'leftovers', lambda paths: [])
    found = environment.status(name='ut1')
    assert (found.state, found.stack, found.systemd) == (
        'absent', 'not run', 'offline')
    assert set(dataclasses.asdict(found)) >= {'stack_phase', 'leftovers'}


def test_default_devstack_dir(monkeypatch):
    monkeypatch.setenv(environment.DEVSTACK_ENV, '/x/devstack')
    assert environment.default_devstack_dir() == pathlib.Path('/x/devstack')
    monkeypatch.delenv(environment.DEVSTACK_ENV)
    assert environment.default_devstack_dir() == DEVSTACK


def test_execute_runs_in_the_container_as_asked(state, monkeypatch):
    paths = layout.EnvPaths.of('ut4')
    with pytest.raises(UserError, match='no running devstack environment'):
        environment.execute(['true'], name='ut4')
    container.save(paths, container.Record(
        name='ut4', machine='m', namespace='n', lower='/l', merged='/m',
        address='a', cgroups=[], leader_pid=42))
    monkeypatch.setattr(container, 'alive', lambda record: True)
    seen = []

    def run(record, argv, *, user=None, env=None, **kwargs):
        seen.append((argv, user))
        return dataclasses.make_dataclass('Done', ['returncode'])(7)

    monkeypatch.setattr(container, 'run', run)
    assert environment.execute(['ls', '-l'], name='ut4') == 7
    assert environment.execute(['openstack', 'server', 'list'], name='ut4',
                               admin=True) == 7
    assert environment.execute(['id'], name='ut4', root=True) == 7
    assert seen[0] == (['ls', '-l'], stack.STACK_USER)
    assert seen[1][0][-3:] == ['openstack', 'server', 'list']
    assert 'openrc admin admin' in seen[1][0][2]
    assert seen[2] == (['id'], None)
    with pytest.raises(UserError, match='no command given'):
        environment.execute([], name='ut4')


def test_tempest_runs_devstacks_tempest_once_stack_sh_completed(
        state, monkeypatch):
    paths = layout.EnvPaths.of('ut5')
    with pytest.raises(UserError, match='no running devstack environment'):
        environment.tempest('x', name='ut5')
    container.save(paths, container.Record(
        name='ut5', machine='m', namespace='n', lower='/l', merged='/m',
        address='a', cgroups=[], leader_pid=42))
    monkeypatch.setattr(container, 'alive', lambda record: True)
    with pytest.raises(UserError, match='stack.sh has not completed'):
        environment.tempest('x', name='ut5')
    stack.save_result(paths, stack.StackResult(0, 1.0, 'p', '', '', '/l'))
    seen = []

    def run(record, argv, *, user=None, env=None, **kwargs):
        seen.append((argv, user, env))
        return dataclasses.make_dataclass('Done', ['returncode'])(0)

    monkeypatch.setattr(container, 'run', run)
    assert environment.tempest('^trove_tempest_plugin', name='ut5') == 0
    argv, user, env = seen[0]
    assert user == stack.STACK_USER
    assert argv[-2:] == ['--regex', '^trove_tempest_plugin']
    assert '--serial' in argv and 'tox' in argv
    # The constraints lib/tempest made the venv with: else tox remakes it.
    assert env['UPPER_CONSTRAINTS_FILE'] == stack.TEMPEST_CONSTRAINTS
    assert env['TOX_CONSTRAINTS_FILE'] == stack.TEMPEST_CONSTRAINTS
