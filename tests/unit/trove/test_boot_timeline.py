"""trovestack.trove.boot_timeline: reading each side's account of a boot."""

import datetime
import time
import types

from trovestack.trove import boot_timeline

START = 1_800_000_000.0
INSTANCE = 'f00d0000-0000-4000-8000-000000000001'


def _breakdown():
    return boot_timeline.Breakdown(INSTANCE, START)


def _guest_output():
    return '\n'.join([
        '== kernel',
        f'{START + 20:.6f} debian kernel: Linux version 6.1.0',
        '== systemd',
        f'{START + 30:.6f} demo systemd[1]: systemd 252 running in system '
        'mode (+PAM)',
        f'{START + 31:.6f} demo systemd[1]: Starting '
        'cloud-init-local.service - Initial cloud-init job...',
        f'{START + 40:.6f} demo systemd[1]: Finished '
        'cloud-init-local.service - Initial cloud-init job.',
        f'{START + 60:.6f} demo systemd[1]: Started guest-agent.service - '
        'OpenStack Trove guest agent.',
        '== agent',
        f'{START + 61:.6f} demo trove-guestagent[585]: import eventlet',
        f'{START + 75:.6f} demo trove-guestagent[585]: trove guest agent: '
        'imported in 14.2 s, released 12.0 s later',
        f'{START + 80:.6f} demo trove-guestagent[585]: 2026-12-06 '
        '15:00:59.054 585 INFO trove.cmd.guest [-] Creating user',
        f'{START + 90:.6f} demo trove-guestagent[585]: ... INFO '
        "trove.guestagent.datastore.manager [req] Starting datastore "
        "prepare for 'mariadb:11.8'.",
        f'{START + 150:.6f} demo trove-guestagent[585]: ... INFO ... '
        "Completed setup of 'mariadb' datastore successfully.",
        '== sudo',
        '51',
        '== ready',
        datetime.datetime.fromtimestamp(START + 120, datetime.timezone.utc)
        .strftime('%Y-%m-%dT%H:%M:%S.%f') + '123Z 2026-12-06 15:10:00 0 '
        '[Note] mariadbd: ready for connections.',
        '== health',
        f'{int((START + 119) * 1e9)} 1',
        f'{int((START + 129) * 1e9)} 0',
        '== docker',
        f'{int((START + 100) * 1e9)} create',
        f'{int((START + 110) * 1e9)} start',
        f'{int((START + 130) * 1e9)} health_status: healthy',
    ])


def test_guest_stages_are_read_and_corrected_by_its_clock():
    breakdown = _breakdown()
    calls = []

    def run(script):
        calls.append(script)
        if script.startswith('date'):
            # The guest's clock runs 10 s ahead of the host's.
            return f'{time.time() + 10:.6f}\n'
        # Its journal, in its own clock: everything 10 s late.
        return _guest_output().replace(
            f'{START + 20:.6f}', f'{START + 30:.6f}')

    boot_timeline.record_guest(breakdown, run)
    assert calls[0].startswith('date')
    at = {event.stage: event.at for event in breakdown.events}
    assert 19 < at['kernel started'] < 21
    assert 19 < at['systemd started'] < 21
    assert 49 < at['guest agent unit started'] < 51
    assert 50 < at['agent first output'] < 52
    assert 64 < at['agent released'] < 66
    assert 69 < at['agent logging'] < 71
    assert 79 < at['prepare started'] < 81
    assert 99 < at['database container started'] < 101
    assert 119 < at['database healthy'] < 121
    assert 139 < at['prepare finished'] < 141
    assert 109 < at['database ready (server log)'] < 111
    assert 108 < at['health check 1 (failed, exit 1)'] < 110
    assert 118 < at['health check 2 (passed)'] < 120
    assert any('10' in note and 'off' in note for note in breakdown.notes)
    assert 'guest: 51 sudo calls since boot' in breakdown.notes


def test_the_consoles_early_boot_times_win_over_a_lagging_guest_clock():
    breakdown = _breakdown()
    breakdown.add('kernel started', 'console', START + 5)
    breakdown.add('systemd started', 'console', START + 18)

    def run(script):
        if script.startswith('date'):
            return f'{time.time():.6f}\n'
        return _guest_output()   # its kernel at +20, systemd at +30

    boot_timeline.record_guest(breakdown, run)
    at = {event.stage: (event.at, event.source)
          for event in breakdown.events}
    assert at['kernel started'] == (5.0, 'console')
    assert at['systemd started'] == (18.0, 'console')
    assert any('15 s later than the console' in note
               for note in breakdown.notes), breakdown.notes


def test_an_unreachable_guest_leaves_a_note_and_nothing_else():
    breakdown = _breakdown()

    def run(script):
        raise RuntimeError('guest 10.0.0.5: no answer in 120 s')

    boot_timeline.record_guest(breakdown, run)
    assert breakdown.events == []
    assert breakdown.notes == ['guest: guest 10.0.0.5: no answer in 120 s']


def test_rows_are_in_time_order_with_the_time_since_the_last():
    breakdown = _breakdown()
    breakdown.add('later', 'guest', START + 30)
    breakdown.add('first', 'trove', START + 10)
    breakdown.add('first', 'trove', START + 12)   # seen already: kept
    rows = breakdown.rows()
    assert [(r['stage'], r['at'], r['delta']) for r in rows] == [
        ('first', 10.0, 10.0), ('later', 30.0, 20.0)]
    assert breakdown.as_dict()['events'] == rows
    assert 'later' in breakdown.text()


def test_console_watch_times_each_mark_as_it_appears(tmp_path):
    console = tmp_path / 'console.log'
    watch = boot_timeline.ConsoleWatch(lambda: console, poll=0.01)
    watch.start()
    time.sleep(0.05)
    console.write_text('  Booting `Debian GNU/Linux\'\nLoading Linux 6.1\n')
    time.sleep(0.1)
    with console.open('a') as out:
        out.write('[    0.000000] Linux version 6.1.0-57-amd64\n')
    time.sleep(0.1)
    watch.stop()
    watch.join(5)
    breakdown = boot_timeline.Breakdown(INSTANCE, time.time() - 100)
    watch.record(breakdown)
    at = {event.stage: event.at for event in breakdown.events}
    assert at['boot loader'] <= at['kernel loading'] \
        < at['kernel started']
    assert 'console log opened (qemu started)' in at
    assert 'login prompt' not in at


def test_console_that_never_appears_is_a_note():
    watch = boot_timeline.ConsoleWatch(lambda: None)
    breakdown = _breakdown()
    watch.record(breakdown)
    assert breakdown.notes == ['console: no console log appeared']


def test_taskmanager_lines_of_this_instance_only(tmp_path):
    def stamp(seconds):
        return datetime.datetime.fromtimestamp(START + seconds).strftime(
            '%Y-%m-%d %H:%M:%S.%f')[:23]

    log = tmp_path / 'trove-taskmanager.log'
    log.write_text('\n'.join([
        f'{stamp(1)} 7 INFO trove.taskmanager.models [req] Finished to '
        f'prepare networks for the instance {INSTANCE}',
        f'{stamp(2)} 7 INFO trove.taskmanager.models [req] Waiting for '
        'instance someone-else up and running',
        f'{stamp(7)} 7 INFO trove.taskmanager.models [req] Waiting for '
        f'instance {INSTANCE} up and running with timeout 3600s',
        f'{stamp(200)} 7 INFO trove.taskmanager.models [req] Created '
        f'instance {INSTANCE} successfully.',
    ]) + '\n')
    breakdown = _breakdown()
    boot_timeline.record_taskmanager_log(breakdown, log)
    at = {event.stage: event.at for event in breakdown.events}
    assert at == {'trove: networks ready': 1.0,
                  'trove: nova asked to boot': 7.0,
                  'trove: guest ready': 200.0}


def test_nova_events_of_the_create_action():
    event = {'event': 'compute__do_build_and_run_instance',
             'start_time': '2027-01-15T08:00:07.000000',
             'finish_time': '2027-01-15T08:00:20.500000'}
    zero = datetime.datetime(2027, 1, 15, 8, 0, 0,
                             tzinfo=datetime.timezone.utc).timestamp()
    compute = types.SimpleNamespace(
        server_actions=lambda server: [
            types.SimpleNamespace(action='create', request_id='req-1')],
        get_server_action=lambda request, server: types.SimpleNamespace(
            events=[event]))
    breakdown = boot_timeline.Breakdown(INSTANCE, zero)
    boot_timeline.record_nova(breakdown, types.SimpleNamespace(
        compute=compute), 'server-1')
    at = {e.stage: e.at for e in breakdown.events}
    assert at == {'nova: do_build_and_run_instance started': 7.0,
                  'nova: do_build_and_run_instance finished': 20.5}


def test_tracker_statuses_are_since_the_create_call():
    breakdown = _breakdown()
    tracker = types.SimpleNamespace(timeline={'created': 0.7,
                                              'status ACTIVE': 240.2})
    boot_timeline.record_tracker(breakdown, tracker)
    at = {e.stage: e.at for e in breakdown.events}
    assert at == {'trove: created': 0.7, 'trove: status ACTIVE': 240.2}
