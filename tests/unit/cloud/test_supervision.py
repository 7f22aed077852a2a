"""The process model's pure parts: start order, crash accounting, the
supervisord configuration we write."""

import threading
import time

import pytest

from trovestack.cloud import crashwatch
from trovestack.cloud import supervision


def _program(name, *needs):
    return supervision.Program(name, ['true'], needs=needs)


def test_order_puts_needs_first_and_keeps_the_rest_stable():
    nodes = [_program('c', 'b'), _program('a'), _program('b', 'a'),
             supervision.Step('d', lambda: None, ('c', 'missing'))]
    assert supervision.order(nodes) == ['a', 'b', 'c', 'd']


def test_a_cycle_is_refused():
    with pytest.raises(ValueError, match='cycle'):
        supervision.order([_program('a', 'b'), _program('b', 'a')])


def test_start_in_order_waits_for_needs_and_runs_the_rest_in_parallel():
    started, lock = [], threading.Lock()
    running = {'now': 0, 'most': 0}

    def start(program):
        with lock:
            running['now'] += 1
            running['most'] = max(running['most'], running['now'])
            started.append(program.name)
        time.sleep(0.2)
        with lock:
            running['now'] -= 1

    nodes = [_program('x'), _program('y'), _program('z', 'x', 'y'),
             supervision.Step('after', lambda: started.append('after'),
                              ('z',))]
    supervision.start_in_order(nodes, start, parallel=4)
    assert started.index('z') > max(started.index('x'),
                                    started.index('y'))
    assert started[-1] == 'after'
    assert running['most'] == 2


def test_a_failure_stops_what_has_not_started():
    started = []

    def start(program):
        if program.name == 'bad':
            raise supervision.SupervisionError('bad exited')
        started.append(program.name)

    with pytest.raises(supervision.SupervisionError, match='bad exited'):
        supervision.start_in_order(
            [_program('bad'), _program('later', 'bad')], start)
    assert started == []


def test_parallel_limits_how_many_start_at_once():
    lock, running = threading.Lock(), {'now': 0, 'most': 0}

    def start(program):
        with lock:
            running['now'] += 1
            running['most'] = max(running['most'], running['now'])
        time.sleep(0.1)
        with lock:
            running['now'] -= 1

    supervision.start_in_order([_program(str(i)) for i in range(6)], start,
                               parallel=2)
    assert running['most'] == 2


def test_condition_says_what_status_shows():
    def status(state, pid=1, **kwargs):
        return supervision.Status('p', state, pid, **kwargs)

    assert supervision.condition(status('RUNNING'), True) == 'running'
    assert supervision.condition(status('RUNNING'), False) == \
        'not answering'
    assert supervision.condition(status('BACKOFF', None), False) == \
        'restarting'
    assert supervision.condition(status('FATAL', None), False) == 'failed'
    assert supervision.condition(status('RUNNING', given_up=True),
                                 True) == 'failed'
    assert supervision.condition(status('STOPPED', None), False) == \
        'stopped'


def test_the_configuration_quotes_what_supervisord_would_expand(tmp_path):
    supervisor = supervision.Supervisor(tmp_path)
    program = supervision.Program(
        'web', ['server', '--url', 'http://h/%(x)s', 'a b'],
        netns='ns1', env={'PASSWORDLESS': 'a"b,c%d'})
    text = supervisor._section(program)
    assert ('command = ip netns exec ns1 server --url '
            "'http://h/%%(x)s' 'a b'") in text
    assert 'PASSWORDLESS="a\\"b,c%%d"' in text
    assert f'{supervision.OWNER_VARIABLE}="{tmp_path}"' in text
    assert 'autostart = false' in text and 'stopasgroup = true' in text
    assert 'user =' not in text
    assert 'user = nobody' in supervisor._section(
        supervision.Program('x', ['true'], user='nobody'))


def test_a_deep_state_directory_gets_a_short_socket(tmp_path):
    deep = tmp_path / ('x' * 120)
    supervisor = supervision.Supervisor(deep)
    assert len(str(supervisor.socket)) < 100
    assert supervision.Supervisor(deep).socket == supervisor.socket


def test_crashes_are_counted_and_a_crash_loop_is_given_up():
    record = {}
    for i in range(crashwatch.GIVE_UP_AFTER - 1):
        assert not crashwatch.note_crash(record, 'osd', 100.0 + i, 'boom')
    assert record['osd']['crashes'] == crashwatch.GIVE_UP_AFTER - 1
    assert crashwatch.note_crash(record, 'osd', 110.0, 'boom again')
    assert record['osd']['given_up']
    assert record['osd']['last_error'] == 'boom again'


def test_old_crashes_leave_the_window():
    record = {}
    for i in range(crashwatch.GIVE_UP_AFTER - 1):
        crashwatch.note_crash(record, 'mon', float(i), 'x')
    late = crashwatch.WINDOW + 100.0
    assert not crashwatch.note_crash(record, 'mon', late, 'x')
    assert record['mon']['crashes'] == crashwatch.GIVE_UP_AFTER
    assert record['mon']['times'] == [late]


def test_last_error_reads_supervisord_and_the_program_log(tmp_path):
    (tmp_path / 'supervisord.log').write_text(
        '2026-12-06 INFO spawned: osd\n'
        '2026-12-06 WARN exited: osd (terminated by SIGKILL; not '
        'expected)\n')
    (tmp_path / 'osd.log').write_text('fine\nERROR: disk gone\nlater\n')
    assert crashwatch.last_error(tmp_path, 'osd') == (
        'osd (terminated by SIGKILL; not expected); ERROR: disk gone')


def test_last_error_is_the_crash_not_the_restarts_first_lines(tmp_path):
    """ovs-vswitchd's assertion, then the restarted switch's start-up
    lines (one names TCP Segmentation Offloading): the assertion is the
    last error."""
    (tmp_path / 'supervisord.log').write_text(
        'WARN exited: ovs-vswitchd (terminated by SIGABRT; not expected)\n')
    (tmp_path / 'ovs-vswitchd.log').write_text(
        '2026-12-07T17:02:46.749Z|00105|util|EMER|../lib/conntrack.c:1063: '
        'assertion conn->conn_type == CT_CONN_TYPE_DEFAULT failed in '
        'conn_update_state()\n'
        '2026-12-07T17:03:32Z|00006|userspace_tso|INFO|Userspace TCP '
        'Segmentation Offloading support enabled\n')
    assert crashwatch.last_error(tmp_path, 'ovs-vswitchd').endswith(
        'failed in conn_update_state()')
