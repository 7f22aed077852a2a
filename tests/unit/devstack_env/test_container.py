"""The container's pieces that need no container: command lines, cgroup
directories, process identity, what stop leaves."""

import os
import subprocess

from trovestack.common import netns
from trovestack.devstack_env import container
from trovestack.devstack_env import layout


def _record(**kw):
    fields = dict(name='t1', machine='trovestack-t1',
                  namespace='trovestack-ds-t1', lower='/cache/rootfs',
                  merged='/state/t1/rootfs', address=container.ADDRESS,
                  cgroups=[], leader_pid=1234, leader_started=5.0)
    fields.update(kw)
    return container.Record(**fields)


def test_nspawn_argv_boots_in_our_namespace_unregistered():
    argv = container.nspawn_argv(_record(), [
        container.Bind('/cache/apt', '/srv/trovestack/apt'),
        container.Bind('/dev/net/tun', '/dev/net/tun', read_only=False)])
    assert argv[0] == 'systemd-nspawn' and '--boot' in argv
    assert ('--network-namespace-path='
            f'{netns.NETNS_DIR}/trovestack-ds-t1') in argv
    assert '--register=no' in argv and '--keep-unit' in argv
    assert '--directory=/state/t1/rootfs' in argv
    assert '--bind-ro=/cache/apt:/srv/trovestack/apt' in argv
    assert '--bind=/dev/net/tun:/dev/net/tun' in argv
    assert not any(a.startswith('--private-network') for a in argv)
    assert '--capability=CAP_NET_ADMIN,CAP_IPC_LOCK' in argv


def test_enter_argv_as_a_user_with_a_clean_environment():
    argv = container.enter_argv(_record(), ['bash', '-c', 'true'],
                                user='stack', env={'HOME': '/opt/stack'})
    assert argv[:2] == ['nsenter', '--target=1234']
    for flag in ('--mount', '--net', '--pid', '--root', '--wd'):
        assert flag in argv
    tail = argv[argv.index('--') + 1:]
    assert tail[:5] == ['runuser', '-u', 'stack', '--', 'env']
    assert 'HOME=/opt/stack' in tail and tail[-3:] == ['bash', '-c', 'true']


def test_enter_argv_as_root_keeps_argv():
    argv = container.enter_argv(_record(), ['systemctl', 'is-system-running'])
    assert argv[-2:] == ['systemctl', 'is-system-running']
    assert 'runuser' not in argv


def test_cgroup_dirs_follow_the_hierarchies_present(tmp_path):
    for hierarchy in ('systemd', 'unified', 'pids'):
        (tmp_path / hierarchy).mkdir()
        (tmp_path / hierarchy / 'cgroup.procs').write_text('')
    (tmp_path / 'not-mounted').mkdir()
    dirs = container.cgroup_dirs('x', tmp_path)
    assert dirs == [str(tmp_path / h / 'x')
                    for h in ('pids', 'systemd', 'unified')]
    assert container.own_cgroups(dirs) == dirs[1:]
    pure = tmp_path / 'v2'
    pure.mkdir()
    (pure / 'cgroup.controllers').write_text('')
    assert container.cgroup_dirs('x', pure) == [str(pure / 'x')]


def test_cgroup_pids_and_removal_deepest_first(tmp_path):
    top = tmp_path / 'trovestack-ds-t1'
    (top / 'payload' / 'init.scope').mkdir(parents=True)
    (top / 'cgroup.procs').write_text('')
    (top / 'payload' / 'init.scope' / 'cgroup.procs').write_text('7\n9\n')
    assert container.cgroup_pids(str(top)) == [7, 9]
    # Plain directories stand in for cgroup ones: rmdir fails on files.
    for path in top.rglob('cgroup.procs'):
        path.unlink()
    assert container.remove_cgroups([str(top), str(tmp_path / 'gone')]) == []
    assert not top.exists()


def test_same_process_needs_the_same_start_time():
    me = os.getpid()
    start = container.started(me)
    assert container.same_process(me, start)
    assert not container.same_process(me, start - 100)
    assert not container.same_process(0, 0.0)


def test_find_leader_is_in_another_pid_namespace():
    # Without a container nothing below this process qualifies.
    child = subprocess.Popen(['sleep', '5'])
    try:
        assert container.find_leader(os.getpid()) is None
    finally:
        child.kill()
        child.wait()


def test_nspawn_run_entries_of_one_machine(tmp_path):
    (tmp_path / 'propagate' / 'trovestack-t1').mkdir(parents=True)
    (tmp_path / 'propagate' / 'other').mkdir()
    (tmp_path / 'unix-export' / 'trovestack-t1').mkdir(parents=True)
    found = container.nspawn_run_entries('trovestack-t1', tmp_path)
    assert [p.parent.name for p in found] == ['propagate', 'unix-export']


def test_record_round_trip(tmp_path):
    paths = layout.EnvPaths.of('t1', tmp_path)
    record = _record(cgroups=['/sys/fs/cgroup/systemd/x'])
    container.save(paths, record)
    assert container.load(paths) == record
    paths.record.unlink()
    assert container.load(paths) is None


def test_stop_with_nothing_there_does_nothing(tmp_path):
    paths = layout.EnvPaths.of('t9', tmp_path)
    assert container.stop(paths) == []
    assert container.leftovers(paths) == []


def test_alive_is_false_for_a_dead_leader():
    assert not container.alive(_record(leader_pid=0))
    assert not container.alive(_record(leader_pid=os.getpid(),
                                       leader_started=1.0))


def test_names_of_an_environment(tmp_path):
    paths = layout.EnvPaths.of('ci1', tmp_path)
    assert paths.namespace == 'trovestack-ds-ci1'
    assert paths.machine == 'trovestack-ci1'
    assert paths.merged == tmp_path / 'ci1' / 'rootfs'
