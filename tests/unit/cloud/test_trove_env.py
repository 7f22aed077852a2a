"""A Trove tree's environment (trovestack.cloud.trove_env) and how the
local cloud's Trove services are pointed at it: no cloud, no pip run
(except where said)."""

import json
import pathlib
import subprocess
import sys

import pytest

from trovestack.cloud import LocalCloudError
from trovestack.cloud import controlplane
from trovestack.cloud import layout
from trovestack.cloud import services
from trovestack.cloud import trove_env
from trovestack.cloud import trove_source
from trovestack.commands import cloud as cloud_command

NOT_FOUND = '''\
Obtaining file:///src/trove
  Preparing editable metadata (pyproject.toml): finished with status 'done'
INFO: pip is looking at multiple versions of trove to determine which \
version is compatible with other requirements. This could take a while.
ERROR: Could not find a version that satisfies the requirement \
trovestack-no-such-lib>=1 (from trove) (from versions: none)
ERROR: No matching distribution found for trovestack-no-such-lib>=1
'''

CONFLICT = '''\
ERROR: Cannot install trove==26.0.0 because these package versions have \
conflicting dependencies.

The conflict is caused by:
    trove 26.0.0 depends on oslo.db>=4.27.0
    trove 26.0.0 depends on oslo.db>=99
    The user requested (constraint) oslo-db==18.1.1

To fix this you could try to:
1. loosen the range of package versions you've specified

ERROR: ResolutionImpossible: for help visit https://pip.pypa.io/...
'''


def _tree(path, requirements='oslo.db>=4\n'):
    """A minimal Trove-looking tree (not installable: no pip here)."""
    (path / 'trove' / 'db').mkdir(parents=True)
    (path / 'trove' / '__init__.py').write_text('')
    (path / 'trove' / 'db' / 'models.py').write_text('x = 1\n')
    (path / 'trove' / 'api.py').write_text('y = 1\n')
    (path / 'setup.cfg').write_text('[metadata]\nname = trove\n')
    (path / 'requirements.txt').write_text(requirements)
    return path


def test_constraints_leave_out_troves_own_pin(tmp_path, monkeypatch):
    pins = tmp_path / 'constraints.txt'
    pins.write_text('# header\noslo.db==18.1.1\ntrove==26.0.0\n'
                    'Trove == 25\ntrove_tempest_plugin==2.8.0\n')
    monkeypatch.setattr(trove_env, 'project_constraints', lambda: pins)
    text = trove_env.constraints_text()
    assert text.splitlines() == ['# header', 'oslo.db==18.1.1',
                                 'trove_tempest_plugin==2.8.0']


def test_the_projects_constraints_are_found_in_the_checkout():
    found = trove_env.project_constraints()
    assert found is not None and found.name == 'constraints.txt'
    lines = trove_env.constraints_text().splitlines()
    assert not [line for line in lines if line.startswith('trove==')]
    assert [line for line in lines if line.startswith('oslo.db==')]


def test_key_follows_packaging_files_not_code(tmp_path):
    tree = _tree(tmp_path / 'tree')
    key, digest = trove_env.key_of(tree), trove_env.code_digest(tree)
    (tree / 'trove' / 'api.py').write_text('y = 2\n')
    assert trove_env.key_of(tree) == key, 'code needs no new environment'
    assert trove_env.code_digest(tree) != digest
    (tree / 'requirements.txt').write_text('oslo.db>=5\n')
    assert trove_env.key_of(tree) != key
    other = _tree(tmp_path / 'other')
    assert trove_env.key_of(other) != trove_env.key_of(tree)


def test_migrations_digest_follows_the_database_code(tmp_path):
    tree = _tree(tmp_path / 'tree')
    before = trove_env.migrations_digest(tree)
    (tree / 'trove' / 'api.py').write_text('y = 3\n')
    assert trove_env.migrations_digest(tree) == before
    (tree / 'trove' / 'db' / 'models.py').write_text('x = 2\n')
    assert trove_env.migrations_digest(tree) != before
    assert trove_env.migrations_digest(None)   # the venv's release


@pytest.mark.parametrize('output, expected', [
    (NOT_FOUND, 'trovestack-no-such-lib>=1, which no package index offers'),
    (CONFLICT, 'oslo.db>=99, but the constraints pin oslo-db==18.1.1'),
])
def test_the_requirement_pip_could_not_meet_is_named(output, expected):
    assert trove_env.failed_requirement(output) == expected
    line = trove_env.install_error('/src/trove', output, '/s/logs/x.log')
    assert line == (f'the Trove tree /src/trove needs {expected}; '
                    f'pip\'s log: /s/logs/x.log')


def test_another_pip_failure_is_its_last_error():
    output = 'Obtaining file:///src\nERROR: first\nERROR: the last one\n'
    assert trove_env.failed_requirement(output) is None
    assert trove_env.install_error('/src', output, '/l') == (
        'pip could not install the Trove tree /src: the last one; '
        'pip\'s log: /l')


def test_pip_installs_into_the_environment_under_its_constraints(tmp_path):
    argv = trove_env.pip_argv(tmp_path / 'env', '/src/trove')
    assert argv[:3] == [sys.executable, '-m', 'pip']
    assert argv[3:5] == ['--python', str(tmp_path / 'env' / 'bin' /
                                          'python')]
    assert argv[-4:] == ['-c', str(tmp_path / 'env' / 'constraints.txt'),
                         '-e', '/src/trove']
    assert '--no-build-isolation' in argv
    assert '--no-build-isolation' not in trove_env.pip_argv(
        tmp_path, '/src', isolated=True)


def test_build_requires_come_from_pyproject(tmp_path):
    (tmp_path / 'pyproject.toml').write_text(
        '[build-system]\nrequires = ["pbr>=6.0.0", "setuptools>=64.0.0"]\n'
        'build-backend = "pbr.build"\n')
    assert trove_env.build_requires(tmp_path) == ['pbr>=6.0.0',
                                                  'setuptools>=64.0.0']
    assert trove_env.build_requires(tmp_path / 'none') is None


def _fake_install(calls, fail=None):
    def install(root, tree, log_path):
        calls.append((root, tree))
        (root / 'bin').mkdir(exist_ok=True)
        if fail:
            raise trove_env.RequirementError(fail)
    return install


def test_ensure_makes_one_environment_per_key(tmp_path, monkeypatch):
    lay = layout.Layout(tmp_path / 'state')
    tree = _tree(tmp_path / 'tree')
    calls = []
    monkeypatch.setattr(trove_env, '_install', _fake_install(calls))
    first = trove_env.ensure(lay, tree)
    assert first.created and len(calls) == 1
    assert first.env.root == lay.root / 'trove-env' / trove_env.key_of(tree)
    again = trove_env.ensure(lay, tree)
    assert not again.created and again.env == first.env
    assert len(calls) == 1
    record = json.loads((first.env.root / trove_env.COMPLETE).read_text())
    assert record['tree'] == str(tree)
    # The environment sees the venv's packages, its own first.
    site = trove_env.site_packages(first.env.root)
    assert (site / trove_env.PTH).read_text() == (
        f'import {trove_env.MODULE}; {trove_env.MODULE}.install()\n')
    assert trove_env.PTH > '__editable__.trove-26.0.0.pth'
    assert 'trove==' not in (first.env.root / 'constraints.txt').read_text()


def test_a_failed_install_leaves_nothing(tmp_path, monkeypatch):
    lay = layout.Layout(tmp_path / 'state')
    tree = _tree(tmp_path / 'tree')
    monkeypatch.setattr(trove_env, '_install',
                        _fake_install([], fail='needs x>=1'))
    with pytest.raises(trove_env.RequirementError, match='needs x>=1'):
        trove_env.ensure(lay, tree)
    assert list((lay.root / 'trove-env').iterdir()) == [
        lay.root / 'trove-env' / '.lock']
    assert trove_env.env_of(lay, trove_env.key_of(tree)) is None


def test_stale_environments_are_removed(tmp_path):
    lay = layout.Layout(tmp_path)
    for key in ('old', 'current'):
        (lay.root / 'trove-env' / key).mkdir(parents=True)
    assert trove_env.remove_stale(lay, ['current']) == ['old']
    assert [p.name for p in (lay.root / 'trove-env').iterdir()
            if p.is_dir()] == ['current']


def test_the_tree_wins_over_the_venvs_release(tmp_path):
    """The environment's python imports ``trove`` from an editable
    finder of its own (as setuptools writes them) although the venv's
    site-packages hold the release; the venv's packages import too."""
    root = tmp_path / 'env'
    trove_env._create(root)
    tree = tmp_path / 'tree'
    (tree / 'trove').mkdir(parents=True)
    (tree / 'trove' / '__init__.py').write_text('FROM_TREE = True\n')
    site = trove_env.site_packages(root)
    (site / '__editable___trove_9_finder.py').write_text(
        'import importlib.util, sys\n'
        f'PATH = {str(tree / "trove" / "__init__.py")!r}\n'
        'class _EditableFinder:\n'
        '    @classmethod\n'
        '    def find_spec(cls, fullname, path=None, target=None):\n'
        '        if fullname == "trove":\n'
        '            return importlib.util.spec_from_file_location(\n'
        '                fullname, PATH,\n'
        '                submodule_search_locations=[PATH[:-12]])\n'
        'def install():\n'
        '    sys.meta_path.append(_EditableFinder)\n')
    (site / '__editable__.trove-9.pth').write_text(
        'import __editable___trove_9_finder; '
        '__editable___trove_9_finder.install()\n')
    code = ('import sys, trove, yaml, trovestack; '
            'print(trove.FROM_TREE, sys.prefix)')
    result = subprocess.run([str(root / 'bin' / 'python'), '-c', code],
                            capture_output=True, text=True, check=True)
    assert result.stdout.split() == ['True', str(root)]


def test_trove_services_run_from_the_runtime(tmp_path):
    lay = layout.Layout(tmp_path)
    state = layout.CloudState.new(25000, tmp_path / 'c.yaml',
                                  services.PORTED)
    env = trove_env.Runtime('/e/bin/python', '/e/bin')
    for name in ('trove', 'trove-taskmanager', 'trove-conductor'):
        argv = services.SERVICES[name].command(state, lay, env)
        assert argv[0] == f'/e/bin/{services.SERVICES[name].console_script}'
    keystone = services.SERVICES['keystone'].command(state, lay, env)
    assert keystone[0] == sys.executable
    assert services.TROVE_SERVICES == ('trove', 'trove-taskmanager',
                                       'trove-conductor')
    setup = services.SERVICES['trove'].setup_argv(lay, [['db_sync']], env)
    assert setup[:3] == ['/e/bin/python', '-m', 'trovestack.cloud.manage']
    glance = services.SERVICES['glance'].setup_argv(lay, [['db_sync']], env)
    assert glance[0] == sys.executable


def test_the_cloud_state_names_the_runtime(tmp_path, monkeypatch):
    monkeypatch.setattr(controlplane.rabbitmq, 'programs', lambda _: [])
    lay = layout.Layout(tmp_path)
    state = layout.CloudState.new(25000, tmp_path / 'c.yaml',
                                  services.PORTED)
    assert trove_env.runtime_of(lay, state) == trove_env.venv_runtime()
    state.trove_env = 'abc'
    runtime = trove_env.runtime_of(lay, state)
    assert runtime.python == str(tmp_path / 'trove-env' / 'abc' / 'bin' /
                                 'python')
    programs = {p.name: p for p in controlplane.LocalCloud(
        tmp_path).programs(state, broker=object())}
    assert programs['trove-conductor'].argv[0] == runtime.script(
        'trove-conductor')
    assert programs['nova'].argv[0] == sys.executable
    # The tree's bytecode goes to its environment, and is written.
    assert programs['trove'].env['PYTHONPYCACHEPREFIX'] == str(
        tmp_path / 'trove-env' / 'abc' / 'pycache')
    assert programs['trove'].env['PYTHONDONTWRITEBYTECODE'] == ''
    assert 'PYTHONPYCACHEPREFIX' not in programs['nova'].env
    state.trove_env = None
    programs = {p.name: p for p in controlplane.LocalCloud(
        tmp_path).programs(state, broker=object())}
    assert 'PYTHONPYCACHEPREFIX' not in programs['trove'].env


def test_plan_keeps_the_release_without_a_tree(tmp_path):
    cloud = controlplane.LocalCloud(tmp_path)
    state = layout.CloudState.new(25000, tmp_path / 'c.yaml',
                                  services.PORTED)
    plan = cloud.plan_trove(state)
    assert plan.tree is None and plan.env_key is None
    assert plan.stamp == trove_source.release().identity()
    assert not cloud._trove_changed(state, plan)
    assert not cloud._migrations_changed(state, plan)


def test_a_tree_that_is_not_one_changes_nothing(tmp_path):
    cloud = controlplane.LocalCloud(tmp_path / 'state')
    state = layout.CloudState.new(25000, tmp_path / 'c.yaml',
                                  services.PORTED)
    with pytest.raises(LocalCloudError, match='is not a Trove source tree'):
        cloud.plan_trove(state, tmp_path)
    tree = _tree(tmp_path / 'tree')
    (tree / 'trove' / 'api.py').write_text('def broken(:\n')
    with pytest.raises(LocalCloudError, match='trove/api.py line 1 does '
                                              'not compile'):
        cloud.plan_trove(state, tree)
    assert not (tmp_path / 'state').exists()


def test_plan_of_a_tree_and_what_changes_restart(tmp_path, monkeypatch):
    monkeypatch.setattr(trove_env, '_install', _fake_install([]))
    cloud = controlplane.LocalCloud(tmp_path / 'state')
    state = layout.CloudState.new(25000, tmp_path / 'c.yaml',
                                  services.PORTED)
    tree = _tree(tmp_path / 'tree')
    plan = cloud.plan_trove(state, tree)
    assert plan.tree == str(tree) and plan.env_created
    assert plan.stamp == f'{plan.env_key}:{trove_env.code_digest(tree)}'
    assert cloud._trove_changed(state, plan)
    state.trove_source, state.trove_env = plan.tree, plan.env_key
    state.trove_started, state.trove_migrations = plan.stamp, plan.migrations
    again = cloud.plan_trove(state)
    assert again == dataclasses_replace(plan, env_created=False)
    assert not cloud._trove_changed(state, again)
    (tree / 'trove' / 'api.py').write_text('y = 5\n')
    changed = cloud.plan_trove(state)
    assert cloud._trove_changed(state, changed)
    assert not cloud._migrations_changed(state, changed)
    (tree / 'trove' / 'db' / 'models.py').write_text('x = 5\n')
    assert cloud._migrations_changed(state, cloud.plan_trove(state))
    back = cloud.plan_trove(state, controlplane.RELEASE)
    assert back.tree is None and cloud._trove_changed(state, back)


def dataclasses_replace(plan, **changes):
    import dataclasses

    return dataclasses.replace(plan, **changes)


def test_restart_names_are_checked_first(tmp_path):
    cloud = controlplane.LocalCloud(tmp_path)
    with pytest.raises(LocalCloudError, match='no local cloud'):
        cloud.restart_services(['trove'])
    cloud.layout.save_state(layout.CloudState.new(
        0, tmp_path / 'c.yaml', services.PORTED))
    with pytest.raises(LocalCloudError) as error:
        cloud.restart_services(['trove', 'nosuch'])
    assert str(error.value).startswith('no service nosuch in the local '
                                       'cloud; restart one of: trove')
    with pytest.raises(LocalCloudError, match='is not running'):
        cloud.restart_services(['trove'])


def test_status_says_which_trove_runs(tmp_path, monkeypatch):
    cloud = controlplane.LocalCloud(tmp_path / 'state')
    state = layout.CloudState.new(0, tmp_path / 'c.yaml', services.PORTED)
    cloud.layout.save_state(state)
    assert cloud.trove_runs().describe() == (
        f'trove {trove_source.release().version} (release)')
    tree = _tree(tmp_path / 'tree')
    state.trove_source = str(tree)
    state.trove_started = f'k:{trove_env.code_digest(tree)}'
    cloud.layout.save_state(state)
    assert cloud.trove_runs().describe() == f'trove unknown from {tree}'
    (tree / 'trove' / 'api.py').write_text('y = 6\n')
    assert cloud.trove_runs().describe().endswith(
        '; changed since Trove started (trovestack cloud restart trove)')
    state.trove_source = str(tmp_path / 'gone')
    cloud.layout.save_state(state)
    assert cloud.trove_runs().describe() == (
        f'trove from {tmp_path / "gone"} (missing)')

    rows = cloud_command._with_code(cloud, [
        ('keystone', 'running', 1, 'u', 0, ''),
        ('trove-conductor', 'running', 2, 'u', 0, '')])
    assert [row[-1] for row in rows] == [
        '', f'trove from {tmp_path / "gone"} (missing)']
    assert cloud_command.STATUS_COLUMNS[-1] == 'Code'


def test_the_environment_module_text_is_valid_python():
    compile(trove_env.MODULE_TEXT.format(paths=['/x']), 'm', 'exec')
    assert pathlib.Path(trove_env.__file__).name == 'trove_env.py'
