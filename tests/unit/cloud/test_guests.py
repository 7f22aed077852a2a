"""The compute cloud's evidence after a failed run (nova, SSH and the log
files stood in for; the compute tests read a real guest)."""

import subprocess
import types

from trovestack.trove import compute_trove
from trovestack.trove import guests


def _server(status='ACTIVE', addresses=None, fault=None):
    return types.SimpleNamespace(
        id='srv-1', name='db1', status=status, fault=fault,
        addresses=addresses if addresses is not None else {
            'private': [{'addr': '10.0.0.5'}],
            compute_trove.NETWORK: [{'addr': '10.223.0.9'}]})


class FakeConn:
    def __init__(self, servers=(), error=None):
        self._servers, self._error = list(servers), error
        self.compute = self

    def servers(self, all_projects):
        assert all_projects
        if self._error:
            raise self._error
        return iter(self._servers)


def _where(tmp_path, logs=()):
    key = tmp_path / 'key'
    key.write_text('private')
    return guests.Where('trovestack-ns', key, tmp_path / 'instances',
                        tuple(logs))


def _ssh(monkeypatch, stdout='', stderr='', returncode=0, exc=None):
    calls = []

    def run(argv, **kwargs):
        calls.append(argv)
        if exc:
            raise exc
        return types.SimpleNamespace(stdout=stdout, stderr=stderr,
                                     returncode=returncode)

    monkeypatch.setattr(guests.subprocess, 'run', run)
    return calls


def test_management_address_is_the_one_on_troves_network():
    assert guests.management_address(_server()) == '10.223.0.9'
    assert guests.management_address(_server(addresses={})) is None


def test_report_reads_console_guest_and_service_errors(tmp_path,
                                                      monkeypatch):
    console = tmp_path / 'instances' / 'srv-1' / 'console.log'
    console.parent.mkdir(parents=True)
    console.write_text(''.join(f'boot line {n}\n' for n in range(40)))
    log = tmp_path / 'trove-api.log'
    log.write_text(
        '2026-11-24 19:46:20.019 3377 DEBUG oslo [-] prefix = %(process)d '
        'ERROR %(name)s\n'
        '2026-11-24 19:50:00.000 3377 ERROR trove.common [-] Timed out\n')
    calls = _ssh(monkeypatch, stdout='-- uptime\n up 5 min\n')
    text = guests.report(FakeConn([_server(fault={'message': 'boom'})]),
                         _where(tmp_path, [log]))
    assert '== server db1 (srv-1) ACTIVE, fault: boom' in text
    assert 'boot line 39' in text and 'boot line 14' not in text
    assert '-- guest 10.223.0.9 (over SSH)' in text
    assert ' up 5 min' in text
    # Only the ERROR line, not the option dump that mentions ERROR.
    assert 'ERROR trove.common [-] Timed out' in text
    assert 'DEBUG oslo' not in text
    argv = calls[0]
    assert argv[:4] == ['ip', 'netns', 'exec', 'trovestack-ns']
    assert 'trove@10.223.0.9' in argv and 'BatchMode=yes' in argv
    assert 'journalctl -u guest-agent.service' in argv[-1]


def test_ssh_failure_and_timeout_are_reported(tmp_path, monkeypatch):
    where = _where(tmp_path)
    _ssh(monkeypatch, stderr='Connection timed out\n', returncode=255)
    assert 'SSH failed: Connection timed out' in guests.guest_shell(
        where, '10.0.0.1', 'trove')
    _ssh(monkeypatch, exc=subprocess.TimeoutExpired('ssh', 90))
    assert 'no answer in 90 s' in guests.guest_shell(
        where, '10.0.0.1', 'trove')


def test_no_ssh_to_a_guest_that_is_not_active_or_without_key(
        tmp_path, monkeypatch):
    calls = _ssh(monkeypatch)
    where = _where(tmp_path)
    text = guests.report(FakeConn([_server(status='SHUTOFF')]), where)
    assert 'SHUTOFF' in text and calls == []
    where.key.unlink()
    assert 'no key' in guests.guest_shell(where, '10.0.0.1', 'trove')


def test_nothing_to_read_says_so(tmp_path):
    missing = tmp_path / 'gone.log'
    text = guests.report(FakeConn(), _where(tmp_path, [missing]))
    assert 'no nova server in the cloud' in text
    assert f'{missing}: missing' in text
    text = guests.report(FakeConn(error=RuntimeError('nova down')),
                         _where(tmp_path))
    assert 'nova servers: nova down' in text


def test_cloud_report_without_a_compute_cloud_is_one_line(tmp_path):
    text = guests.cloud_report(tmp_path / 'nothing')
    assert text.startswith(f'no evidence from the cloud in {tmp_path}')
    assert '\n' not in text


def test_queues_say_what_the_guest_agent_does(monkeypatch, tmp_path):
    monkeypatch.setattr(guests.rabbitmq, 'list_queues', lambda d: [
        ('guestagent.a', 2, 1), ('guestagent.b', 0, 0),
        ('guestagent.c', 0, 1), ('guestagent.c_fanout_1', 0, 1),
        ('conductor', 3, 1), ('compute', 0, 1)])
    text = guests._queues_part(tmp_path)
    assert ('guestagent.a: 2 waiting, 1 consumer(s): the agent is connected '
            'but does not take its calls') in text
    assert 'guestagent.b: 0 waiting, 0 consumer(s): no guest agent' in text
    assert 'guestagent.c: 0 waiting, 1 consumer(s)\n' in text + '\n'
    assert 'conductor: 3 waiting, 1 consumer(s)' in text
    assert 'fanout' not in text and 'compute' not in text


def test_queues_of_a_broker_that_does_not_answer(monkeypatch, tmp_path):
    def fail(data_dir):
        raise guests.rabbitmq.BrokerError('no running broker in x')
    monkeypatch.setattr(guests.rabbitmq, 'list_queues', fail)
    assert guests._queues_part(tmp_path) == \
        '-- RabbitMQ: no running broker in x'


class FakeLayer:
    def __init__(self, log_dir, conditions):
        self.paths = types.SimpleNamespace(log_dir=log_dir)
        self._conditions = conditions

        self.crashes = {}

    def status(self):
        return [types.SimpleNamespace(
            name=name, condition=condition,
            crashes=self.crashes.get(name, (0, ''))[0],
            last_error=self.crashes.get(name, (0, ''))[1])
            for name, condition in self._conditions.items()]


def _processes(tmp_path, vswitchd_log, **conditions):
    """processes_part with ovs-vswitchd's log and the processes'
    conditions (names with _ for -)."""
    (tmp_path / 'ovs-vswitchd.log').write_text(vswitchd_log)
    return guests.processes_part(FakeLayer(tmp_path, {
        name.replace('_', '-'): condition
        for name, condition in conditions.items()}))


def test_a_dead_datapath_comes_first_with_its_last_error(tmp_path):
    text = _processes(
        tmp_path,
        '2026-11-24T18:48:01Z|00088|connmgr|INFO|br-int: 2 flow_mods\n'
        '2026-11-24T18:48:27Z|00089|util|EMER|../lib/conntrack.c:1063: '
        'assertion conn->conn_type == CT_CONN_TYPE_DEFAULT failed\n',
        ovsdb_server='running', ovs_vswitchd='stopped',
        nova_compute='not answering')
    assert text.splitlines() == [
        '-- compute cloud processes that crashed or do not run',
        'ovs-vswitchd: stopped; last error: 2026-11-24T18:48:27Z|00089|util|'
        'EMER|../lib/conntrack.c:1063: assertion conn->conn_type == '
        'CT_CONN_TYPE_DEFAULT failed',
        'nova-compute: not answering']


def test_every_process_running_is_one_line(tmp_path):
    assert guests.processes_part(FakeLayer(tmp_path, {'a': 'running'})) == \
        '-- every process of the compute cloud runs, none crashed'


def test_a_crash_its_supervisor_recovered_is_named(tmp_path):
    layer = FakeLayer(tmp_path, {'ovs-vswitchd': 'running',
                                 'ovn-controller': 'running'})
    layer.crashes = {'ovs-vswitchd': (
        1, 'ovs-vswitchd (terminated by SIGABRT (core dumped); not '
           'expected); |EMER|conntrack.c:1063: assertion')}
    text = guests.processes_part(layer)
    assert text.splitlines()[1] == (
        'ovs-vswitchd: running again after 1 crash(es), the last: '
        'ovs-vswitchd (terminated by SIGABRT (core dumped); not expected); '
        '|EMER|conntrack.c:1063: assertion')
    assert 'ovn-controller' not in text
