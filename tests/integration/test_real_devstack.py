"""devstack's real stack.sh in a systemd container.

The container's lifecycle runs in every test run: a small rootfs (made
once and cached, about a minute the first time) boots with
``systemd-nspawn -b`` in a network namespace of its own to systemd
``running``, a command runs inside, and after ``stop`` nothing of it is
left on the host (namespace, mounts, cgroup directories, processes,
/run/systemd/nspawn entries).

The whole thing (staging, the guest image built on the host with the
staged Trove tree's agent, stack.sh with samples/localrc/mariadb.conf,
Trove's API and datastore versions, trove-tempest-plugin's
test_instance_basic for MariaDB with devstack's tempest (a Trove instance
with a Cinder volume in the container's Ceph), unstack.sh and stack.sh
again, clean.sh) takes about 25 minutes with a warm cache
and several GB of memory: opt in with TROVESTACK_REAL_DEVSTACK=1.
"""

import json
import os
import pathlib
import re
import subprocess
import uuid

import pytest

from tests.helpers import run
from tests.helpers import run_json
from trovestack.common import files
from trovestack.common import mounts
from trovestack.common import netns
from trovestack.devstack_env import container
from trovestack.devstack_env import environment
from trovestack.devstack_env import layout
from trovestack.devstack_env import stack
from trovestack.devstack_env import staging
from trovestack.orchestration import kickstart

# The user's staging cache, read before the session isolates XDG_* (the
# artifacts are keyed by content: sharing them is safe).
CACHE = files.cache_dir('trovestack', 'devstack-env')
REAL = os.environ.get('TROVESTACK_REAL_DEVSTACK') == '1'
DEVSTACK = environment.default_devstack_dir()


def _host_addresses():
    return subprocess.run(['ip', '-o', 'addr'], capture_output=True,
                          text=True, check=True).stdout


@pytest.fixture(scope='module')
def small_rootfs():
    return staging.build_rootfs(staging.small_rootfs_spec(), root=CACHE)


@pytest.fixture
def env_paths():
    # The default state root (the session's own XDG_STATE_HOME): the CLI
    # finds the environment by its name there.
    name = 'lc' + uuid.uuid4().hex[:6]
    paths = layout.EnvPaths.of(name)
    yield paths
    container.stop(paths)


def test_container_lifecycle(small_rootfs, env_paths):
    lower_before = sorted(p.name for p in small_rootfs.path.iterdir())
    booted = container.boot(env_paths, small_rootfs.path)
    record = booted.record
    assert booted.state == 'running', container.failed_units(record)
    assert netns.exists(env_paths.namespace)
    inside = container.run(record, ['ip', '-o', 'addr'],
                           capture_output=True, text=True, check=True).stdout
    assert f'{container.ADDRESS}/' in inside
    assert container.ADDRESS not in _host_addresses()
    hostname = container.run(record, ['cat', '/etc/hostname'],
                             capture_output=True, text=True).stdout
    assert hostname.strip() == env_paths.machine
    # PID 1 inside is systemd, seen through the leader's namespaces.
    comm = container.run(record, ['cat', '/proc/1/comm'],
                         capture_output=True, text=True).stdout
    assert comm.strip() == 'systemd'
    # What a user runs inside, through the CLI, with its exit status.
    shown = run('trovestack', 'devstack', 'exec', '--name', env_paths.name,
                '--root', '--', 'cat', '/etc/hostname')
    assert shown.stdout.strip() == env_paths.machine
    failed = run('trovestack', 'devstack', 'exec', '--name',
                 env_paths.name, '--root', '--', 'sh', '-c', 'exit 3',
                 check=False)
    assert failed.returncode == 3
    processes = [(record.nspawn_pid, record.nspawn_started),
                 (record.leader_pid, record.leader_started)]

    rows = container.stop(env_paths)

    assert {'container', 'namespace', 'cgroups'} <= {r.kind for r in rows}
    assert container.leftovers(env_paths) == []
    assert not netns.exists(env_paths.namespace)
    assert mounts.mounts_under(env_paths.root) == []
    assert not any(os.path.exists(d) for d in record.cgroups)
    assert not any(container.same_process(pid, start)
                   for pid, start in processes)
    assert container.nspawn_run_entries(env_paths.machine) == []
    # The cache stays as it was.
    assert sorted(p.name for p in small_rootfs.path.iterdir()) == \
        lower_before
    lower_hostname = small_rootfs.path / 'etc' / 'hostname'
    assert not lower_hostname.exists() or \
        env_paths.machine not in lower_hostname.read_text()
    # Stopping again finds nothing to do.
    assert container.stop(env_paths) == []


def test_boot_failure_leaves_nothing(tmp_path, env_paths):
    empty = tmp_path / 'not-a-rootfs'
    empty.mkdir()
    with pytest.raises(container.ContainerError):
        container.boot(env_paths, empty, timeout=30)
    assert container.leftovers(env_paths) == []


def test_commands_on_an_environment_that_does_not_exist():
    name = 'cli' + uuid.uuid4().hex[:6]
    state_dir = layout.EnvPaths.of(name).root
    status = run_json('trovestack', 'devstack', 'status', '--name', name)
    assert (status['state'], status['stack']) == ('absent', 'not run')
    rows = run_json('trovestack', 'devstack', 'down', '--name', name)
    for args in (('exec', '--name', name, '--', 'true'),
                 ('tempest', '--name', name, '--datastore', 'mariadb')):
        missing = run('trovestack', 'devstack', *args, check=False)
        assert missing.returncode != 0
        assert missing.stderr.strip().startswith(
            'no running devstack environment'), missing.stderr
        assert len(missing.stderr.strip().splitlines()) == 1
    assert [(r['Kind'], r['Action']) for r in rows] == \
        [('environment', 'unchanged')]
    # Bad input: one line that says what is wrong, nothing made.
    for args, says in ((('--name', name, '--sample', '/nonexistent.conf'),
                        'no sample /nonexistent.conf'),
                       (('--name', 'Not-A-Name'), "environment name")):
        failed = run('trovestack', 'devstack', 'up', *args, check=False)
        assert failed.returncode != 0
        assert failed.stderr.strip().startswith(says), failed.stderr
        assert len(failed.stderr.strip().splitlines()) == 1
    assert not state_dir.exists()
    # The session's own (empty) cache: nothing to remove, nothing removed.
    rows = run_json('trovestack', 'devstack', 'prune', '--dry-run')
    assert all(r['Action'] == 'kept' for r in rows), rows


@pytest.mark.skipif(not REAL, reason='the full staging and stack.sh run, '
                    'tempest, stack.sh again and clean.sh take 25 min or '
                    'more: set TROVESTACK_REAL_DEVSTACK=1')
def test_real_stack_sh(monkeypatch):
    monkeypatch.setenv('XDG_CACHE_HOME', str(CACHE.parents[1]))
    name = 'it' + uuid.uuid4().hex[:6]
    try:
        rows = environment.up(
            sample=kickstart.SAMPLES_DIR / 'mariadb.conf',
            checkout=kickstart.REPO_ROOT, devstack_dir=DEVSTACK, name=name)
        for row in rows:
            print(row)
        checks = {r.name: r.detail for r in rows if r.kind == 'check'}
        assert checks['trove-api'].startswith('HTTP 200')
        assert 'mariadb' in checks['datastore-versions']
        found = environment.status(name=name)
        assert (found.state, found.stack) == ('running', 'ok')
        # every unit of the container ran or was skipped on purpose
        assert found.systemd == 'running', found
        record = container.load(layout.EnvPaths.of(name))
        _guest_agent_is_devstacks_trove(record)
        _tempest_instance_basic_passes(record, name)
        _stack_sh_again_converges(record, name)
        _clean_sh_removes_the_plugins_files(record)
    finally:
        environment.down(name=name)
    paths = layout.EnvPaths.of(name)
    assert container.leftovers(paths) == []
    assert not pathlib.Path(netns.NETNS_DIR, paths.namespace).exists()


def _admin_json(record, command, timeout=300):
    done = stack.as_admin(record, f'{command} -f json', timeout=timeout)
    assert done.returncode == 0, (command, done.stderr[-2000:])
    return json.loads(done.stdout)


def _guest_agent_is_devstacks_trove(record):
    """The guest image the plugin loaded carries the agent of the Trove
    tree devstack installed ($TROVE_DIR, /opt/stack/trove)."""
    images = _admin_json(record, 'openstack image list --tag trove')
    assert len(images) == 1, images
    shown = _admin_json(record, f'openstack image show {images[0]["ID"]}')
    source = shown['properties']['trove_agent_source']
    commit = container.run(
        record, ['git', '-C', f'{stack.DEST}/trove', 'rev-parse', 'HEAD'],
        capture_output=True, text=True, check=True).stdout.strip()
    assert source.startswith('tree:') and source.endswith(f'@{commit}'), (
        source, commit)
    assert shown['properties']['os_distro'] == 'debian'


def _tempest_instance_basic_passes(record, name):
    """trove-tempest-plugin's test_instance_basic for MariaDB passes with
    devstack's own tempest (its venv made by lib/tempest, tempest.conf by
    lib/tempest and the plugin's test-config phase): an instance with a
    Cinder volume (in the container's Ceph) ACTIVE, its database reached
    on its floating IP, then deleted; nothing of it left."""
    done = run('trovestack', 'devstack', 'tempest', '--name', name,
               '--datastore', 'mariadb', check=False, timeout=3600)
    text = done.stdout + done.stderr
    (layout.EnvPaths.of(name).root / 'tempest.out').write_text(text)
    assert done.returncode == 0, text[-4000:]
    assert 'TestInstanceBasicMariaDB' in text
    passed = re.search(r'- Passed: (\d+)', text)
    assert passed and int(passed.group(1)) > 0, text[-2000:]
    assert re.search(r'- Failed: 0\b', text), text[-2000:]
    assert _admin_json(record, 'openstack database instance list '
                       '--all-projects') == []
    assert _admin_json(record, 'openstack volume list --all-projects') == []


def _counts(record):
    return {
        # lib/tempest creates a network "shared" on each stack.sh
        # (devstack's, not the plugin's).
        'networks': sorted(n['Name'] for n in _admin_json(
            record, 'openstack network list') if n['Name'] != 'shared'),
        # The plugin's (devstack uploads its IMAGE_URLS, here the
        # placeholder tempest needs, again on each stack.sh, as cirros).
        'images': len(_admin_json(record, 'openstack image list --tag '
                                  'trove')),
        'versions': sorted(v['Name'] for v in _admin_json(
            record, 'openstack datastore version list mariadb')),
        'groups': sorted(g['Name'] for g in _admin_json(
            record, 'openstack security group list')
            if g['Name'] != 'default'),
        'flavors': len(_admin_json(record, 'openstack flavor list')),
    }


def _stack_sh_again_converges(record, name):
    """unstack.sh, then stack.sh again: nothing the plugin made twice."""
    before = _counts(record)
    assert stack.run_script(record, 'unstack.sh').returncode == 0
    paths = layout.EnvPaths.of(name)
    result = stack.run_stack(record, paths)
    assert result.ok, (result.phase, result.failing, result.tail)
    assert _counts(record) == before


def _clean_sh_removes_the_plugins_files(record):
    """unstack.sh and clean.sh remove what doc/devstack-plugin.md says the
    plugin's clean phase removes on the host: its state directory, its
    configuration files and its trove-mgmt interface."""
    for script in ('unstack.sh', 'clean.sh'):
        done = stack.run_script(record, script)
        assert done.returncode == 0, (script, done.stdout[-2000:])
    left = container.run(
        record, ['sh', '-c', 'ls -d /opt/stack/data/trovestack '
                 '/etc/trove/trove.conf /etc/trove/trove-guestagent.conf '
                 '/etc/trove/api-paste.ini 2>/dev/null; '
                 'ip -o link show trove-mgmt 2>/dev/null; true'],
        capture_output=True, text=True, check=True).stdout
    assert left.strip() == '', left
