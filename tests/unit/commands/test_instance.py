"""trovestack instance up|down: parsing, the library call, the output."""

import json
from unittest import mock

import pytest

from trovestack.commands import cliapp
from trovestack.commands import instance as commands
from trovestack.common import results
from trovestack.trove import boot_timeline
from trovestack.trove import instances

RESULT = instances.InstanceResult(
    name='demo', id='id-1', status='ACTIVE', datastore='mariadb',
    version='11.8', addresses=['10.0.0.5'], created=True,
    timeline={'created': 1.0, 'status BUILD': 2.0, 'status ACTIVE': 300.5})


def _app(command_class, word):
    return cliapp.SingleCommandApp(f'trovestack-{word}', command_class, word)


@pytest.fixture
def conn():
    conn = mock.Mock(name='conn')
    with mock.patch.object(commands.connection, 'connect_from_args',
                           return_value=conn):
        yield conn


def _parse(command_class, arglist):
    return command_class(mock.Mock(), None).get_parser('x').parse_args(
        arglist)


def test_up_defaults():
    parsed = _parse(commands.InstanceUp, [])
    assert (parsed.name, parsed.datastore, parsed.flavor, parsed.size,
            parsed.nics, parsed.timeout) == (
        'demo', None, 'd3', 1, None, instances.DEFAULT_TIMEOUT)


def test_up_options_reach_the_library(conn):
    with mock.patch.object(instances, 'ensure_instance',
                           return_value=RESULT) as ensure:
        assert _app(commands.InstanceUp, 'up').run([
            'db1', '--datastore', 'postgresql:17', '--flavor', 'd2',
            '--size', '0', '--nic', 'net1', '--nic', 'net2',
            '--timeout', '60', '--service-log', '/l', '-f', 'value']) == 0
    args, kwargs = ensure.call_args
    assert args == (conn, 'db1')
    assert kwargs['datastore'] == 'postgresql'
    assert kwargs['version'] == '17'
    assert (kwargs['flavor'], kwargs['nics'], kwargs['timeout']) == (
        'd2', ['net1', 'net2'], 60)
    assert kwargs['volume_size'] is None  # --size 0: no volume
    tracker = kwargs['tracker']
    assert tracker.evidence.logs == ('/l',)
    assert tracker.interval == instances.INTERVAL


def test_up_breakdown_follows_closely_and_shows_the_timeline(conn, capsys):
    breakdown = boot_timeline.Breakdown('id-1', 1000.0)
    breakdown.add('trove: create called', 'trove', 1000.0)
    breakdown.add('kernel started', 'guest', 1030.5)
    breakdown.notes.append('guest: 50 sudo calls since boot')
    with mock.patch.object(instances, 'ensure_instance',
                           return_value=RESULT) as ensure, \
            mock.patch.object(boot_timeline.ComputeAccess, 'of',
                              return_value=None), \
            mock.patch.object(boot_timeline, 'collect',
                              return_value=breakdown) as collect:
        assert _app(commands.InstanceUp, 'up').run(
            ['--breakdown', '-f', 'json']) == 0
    assert ensure.call_args.kwargs['tracker'].interval == \
        commands.BREAKDOWN_INTERVAL
    assert collect.call_args.kwargs['access'] is None
    shown = json.loads(capsys.readouterr().out)
    assert shown['Breakdown']['events'][1] == {
        'at': 30.5, 'delta': 30.5, 'stage': 'kernel started',
        'source': 'guest', 'detail': ''}
    assert shown['Breakdown']['notes'] == ['guest: 50 sudo calls since boot']


def test_up_json_output(conn, capsys):
    with mock.patch.object(instances, 'ensure_instance',
                           return_value=RESULT):
        assert _app(commands.InstanceUp, 'up').run(['-f', 'json']) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown == {
        'Name': 'demo', 'ID': 'id-1', 'Status': 'ACTIVE',
        'Datastore': 'mariadb', 'Version': '11.8',
        'Addresses': ['10.0.0.5'], 'Created': True,
        'Timeline': {'created': 1.0, 'status BUILD': 2.0,
                     'status ACTIVE': 300.5}}


def test_up_table_output_is_readable(conn, capsys):
    with mock.patch.object(instances, 'ensure_instance',
                           return_value=RESULT):
        _app(commands.InstanceUp, 'up').run(['-f', 'table'])
    table = capsys.readouterr().out
    assert '| 10.0.0.5 ' in table
    assert 'created 1.0 s, status BUILD 2.0 s, status ACTIVE 300.5 s' in table


@pytest.mark.parametrize('arglist', [
    ['--datastore', ':11.8'], ['--size', '-1'], ['--size', 'big'],
    ['--timeout', '0']])
def test_bad_options_are_one_line_errors(arglist, capsys):
    with pytest.raises(SystemExit) as caught:
        _parse(commands.InstanceUp, arglist)
    assert caught.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert 'error: argument' in error


def test_unknown_datastore_is_one_line(conn, caplog):
    trove = mock.Mock()
    trove.datastores.list.return_value = []
    with mock.patch.object(instances.connection, 'trove_client',
                           return_value=trove):
        trove.instances.list.return_value = []
        assert _app(commands.InstanceUp, 'up').run(
            ['--datastore', 'mariadbb']) == 1
    errors = [r.getMessage() for r in caplog.records
              if r.levelname == 'ERROR']
    assert len(errors) == 1 and 'no datastore is registered' in errors[0]


def test_failure_is_one_line_then_the_diagnostics(conn, caplog, capsys):
    error = instances.InstanceError(
        'instance demo: stopped at status BUILD: ACTIVE not within 60 s',
        'console (nova):\nlogin:')
    with mock.patch.object(instances, 'ensure_instance',
                           side_effect=error):
        assert _app(commands.InstanceUp, 'up').run([]) == 1
    errors = [r.getMessage() for r in caplog.records
              if r.levelname == 'ERROR']
    assert errors == ['instance demo: stopped at status BUILD: ACTIVE not '
                      'within 60 s']
    assert capsys.readouterr().err.endswith('console (nova):\nlogin:\n')


def test_down(conn, capsys):
    row = results.Row('instance', 'demo', results.DELETED, 'gone', id='i')
    with mock.patch.object(instances, 'delete_instance',
                           return_value=row) as delete:
        assert _app(commands.InstanceDown, 'down').run(
            ['-f', 'json', '--timeout', '30']) == 0
    assert delete.call_args.args == (conn, 'demo')
    assert delete.call_args.kwargs['timeout'] == 30
    assert json.loads(capsys.readouterr().out) == {
        'Name': 'demo', 'ID': 'i', 'Action': 'deleted', 'Detail': 'gone'}


def test_connect_execs_the_client_with_its_pass_through_arguments(
        conn, capsys, monkeypatch):
    """Options before "--", the client's own after it; the client replaces
    the process with the password only in its environment."""
    from trovestack.trove import database_client

    opened = database_client.Session(
        instance='db1', datastore='mariadb', program='mariadb',
        address='10.224.0.5', kind='fixed', user='alice', database='shop',
        argv=['ip', 'netns', 'exec', 'ns', 'mariadb', '-e', 'SELECT 1'],
        env={'MYSQL_PWD': 'pw'})
    monkeypatch.setattr(commands.compute_cloud, 'namespace_of',
                        lambda state_dir: 'ns')
    with mock.patch.object(database_client, 'session',
                           return_value=opened) as session, \
            mock.patch.object(commands.os, 'execvpe') as execvpe:
        _app(commands.InstanceConnect, 'connect').run(
            ['db1', '--user', 'alice', '--address', 'fixed', '--',
             '-e', 'SELECT 1'])
    args, kwargs = session.call_args
    assert args[1:] == ('ns', 'db1')
    assert (kwargs['user'], kwargs['address_kind'], kwargs['extra']) == (
        'alice', 'fixed', ['-e', 'SELECT 1'])
    program, argv, env = execvpe.call_args.args
    assert (program, argv, env['MYSQL_PWD']) == ('ip', opened.argv, 'pw')
    err = capsys.readouterr().err
    assert 'Connecting: mariadb to alice@10.224.0.5' in err
    assert 'pw' not in err.replace('alice@', '')
