"""A real supervisord of trovestack.cloud.supervision: programs started in
order, a killed one started again and its crash counted, a crash loop
given up, a supervisor that was killed replaced without leftovers."""

import pathlib
import sys

import psutil
import pytest

from trovestack.cloud import processes
from trovestack.cloud import supervision
from trovestack.common import waiting


def _ours(root):
    """Live processes carrying root as their supervisor's directory."""
    return [proc.pid for proc in supervision.owned_processes(root)]


@pytest.fixture
def supervisor(tmp_path):
    sup = supervision.Supervisor(tmp_path / 'state')
    yield sup
    sup.shutdown()
    assert _ours(sup.root) == []


def _web(port, *needs):
    return supervision.Program(
        'web', [sys.executable, '-m', 'http.server', '--bind', '127.0.0.1',
                str(port)],
        ready=lambda: processes.http_answers(f'http://127.0.0.1:{port}/'),
        needs=needs)


def test_killed_program_comes_back_and_its_crash_is_counted(supervisor):
    port = processes.free_port()
    nodes = [_web(port, 'sleeper'),
             supervision.Program('sleeper', ['sleep', '600'])]
    supervisor.declare(nodes)
    supervision.start_in_order(nodes, lambda p: supervisor.start(p, 30))
    statuses = supervisor.statuses()
    assert all(status.running for status in statuses.values()), statuses
    assert set(statuses) == {'web', 'sleeper'}
    old = statuses['web'].pid
    psutil.Process(old).kill()
    back = waiting.wait_for(
        'web again', lambda: (supervisor.pid('web') not in (None, old)
                              and processes.http_answers(
                                  f'http://127.0.0.1:{port}/')), 30)
    assert back
    status = waiting.wait_for('crash recorded',
                              lambda: supervisor.status('web').crashes and
                              supervisor.status('web'), 10)
    assert status.crashes == 1
    assert 'SIGKILL' in status.last_error
    assert not status.given_up
    # Started by us again: a new crash history.
    supervisor.stop('web')
    supervisor.start(nodes[0], 30)
    assert supervisor.status('web').crashes == 0


def test_a_program_that_keeps_crashing_is_given_up(supervisor):
    loop = supervision.Program(
        'loop', ['sh', '-c', 'echo "ERROR: no disk"; sleep 1.5; exit 1'])
    supervisor.start(loop, 30)
    status = waiting.wait_for(
        'given up', lambda: supervisor.status('loop').given_up and
        supervisor.status('loop'), 60, interval=0.5)
    assert status.crashes >= 5
    assert 'ERROR: no disk' in status.last_error
    assert supervision.condition(status, False) == 'failed'
    assert supervisor.pid('loop') is None


def test_a_program_dying_at_start_is_one_error_with_its_log(supervisor):
    bad = supervision.Program('bad', ['sh', '-c', 'echo cannot bind; exit 3'])
    with pytest.raises(supervision.SupervisionError,
                       match='bad exited during start-up; last lines of '
                             '.*cannot bind'):
        supervisor.start(bad, 30)
    assert supervisor.pid('bad') is None


def test_a_killed_supervisor_is_replaced_and_its_orphans_stopped(tmp_path):
    sup = supervision.Supervisor(tmp_path / 'state')
    try:
        sleeper = supervision.Program('sleeper', ['sleep', '600'])
        orphan = sup.start(sleeper, 30)
        pid = sup._call('supervisor.getPID')
        psutil.Process(pid).kill()
        psutil.Process(pid).wait(10) if psutil.pid_exists(pid) else None
        assert psutil.pid_exists(orphan)
        again = supervision.Supervisor(tmp_path / 'state')
        again.ensure()
        assert not psutil.pid_exists(orphan) or \
            psutil.Process(orphan).status() == psutil.STATUS_ZOMBIE
        assert again.start(sleeper, 30) != orphan
    finally:
        supervision.Supervisor(tmp_path / 'state').shutdown()
    assert _ours((tmp_path / 'state').absolute()) == []
    assert not pathlib.Path(sup.socket).exists()
