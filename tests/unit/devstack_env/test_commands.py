"""trovestack devstack up|down|status: parsing, the library call, output."""

import json
from unittest import mock

from trovestack.commands import cliapp
from trovestack.commands import devstack_env as commands
from trovestack.common.results import Row
from trovestack.devstack_env import environment


def _parse(command_class, arglist):
    return command_class(mock.Mock(), None).get_parser('x').parse_args(
        arglist)


def _app(command_class, word):
    return cliapp.SingleCommandApp(f'trovestack-{word}', command_class, word)


def test_up_defaults(monkeypatch):
    monkeypatch.delenv(environment.DEVSTACK_ENV, raising=False)
    parsed = _parse(commands.DevstackUp, [])
    assert parsed.name == 'devstack' and not parsed.stage_only
    assert parsed.sample.name == 'mariadb.conf'
    assert str(parsed.devstack) == environment.DEFAULT_DEVSTACK


def test_up_calls_the_library_and_lists_rows():
    rows = [Row('rootfs', '/c/rootfs-1', 'unchanged'),
            Row('stack.sh', 'trovestack-devstack', 'ran', 'completed')]
    with mock.patch.object(environment, 'up', return_value=rows) as up:
        cmd = commands.DevstackUp(mock.Mock(), None)
        parsed = cmd.get_parser('x').parse_args(
            ['--sample', 'samples/localrc/mysql.conf', '--devstack', '/d',
             '--name', 'ci1'])
        headers, data = cmd.take_action(parsed)
    assert headers == commands.HEADERS
    assert data[1] == ('stack.sh', 'trovestack-devstack', 'ran', 'completed')
    assert up.call_args.kwargs['name'] == 'ci1'
    assert str(up.call_args.kwargs['devstack_dir']) == '/d'


def test_up_stage_only_boots_nothing():
    with mock.patch.object(environment, 'stage_only',
                           return_value=[]) as stage, \
            mock.patch.object(environment, 'up') as up:
        cmd = commands.DevstackUp(mock.Mock(), None)
        cmd.take_action(cmd.get_parser('x').parse_args(['--stage-only']))
    assert stage.called and not up.called


def test_bad_name_is_refused_with_a_non_zero_exit(capsys):
    status = _app(commands.DevstackDown, 'devstack-down').run(
        ['--name', 'Bad-Name'])
    assert status != 0
    assert 'environment name' in capsys.readouterr().err


def test_status_as_json(capsys):
    found = environment.Status(
        name='devstack', state='absent', systemd='offline', machine='m',
        namespace='n', address='', leader_pid=0, stack='not run',
        stack_phase='', stack_failing='', stack_seconds=0.0, trove_api='',
        datastore_versions='', leftovers='', state_dir='/s')
    with mock.patch.object(environment, 'status', return_value=found):
        status = _app(commands.DevstackStatus, 'devstack-status').run(
            ['-f', 'json'])
    assert status == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown['state'] == 'absent' and shown['stack'] == 'not run'


def test_library_error_is_one_line(caplog):
    with mock.patch.object(environment, 'down', side_effect=environment.
                           StackFailed('stack.sh failed (exit 1)\nmore')):
        status = _app(commands.DevstackDown, 'devstack-down').run([])
    assert status == 1
    errors = [r.getMessage() for r in caplog.records
              if r.levelname == 'ERROR']
    assert errors == ['stack.sh failed (exit 1) more']
