"""The one cliff application base: errors, --version, single commands."""

from unittest import mock

from cliff import command

from trovestack.commands import cliapp
from trovestack.common.errors import UserError


class _Fails(command.Command):
    """Fails as asked."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument('--version', dest='version')
        parser.add_argument('--code', type=int, default=1)
        return parser

    def take_action(self, parsed_args):
        error = UserError(f'bad\n  version {parsed_args.version}')
        error.exit_code = parsed_args.code
        raise error


def _app():
    return cliapp.SingleCommandApp('fails', _Fails, 'fail')


def test_user_error_is_one_line_and_its_exit_code(caplog):
    assert _app().run(['--version', '8.4', '--code', '3']) == 3
    errors = [r.getMessage() for r in caplog.records
              if r.levelname == 'ERROR']
    assert errors == ['bad version 8.4']


def test_version_alone_is_the_release(capsys):
    assert _app().run(['--version']) == 0
    assert capsys.readouterr().out.split()[-1] == cliapp.release()


def test_command_word_and_flags_are_placed():
    app = _app()
    assert app.command_argv(['fail', '-q', '--code', '2']) == [
        '-q', 'fail', '--code', '2']
    assert app.command_argv(['--code', '2', '--help']) == ['help', 'fail']


def test_command_manager_imports_only_the_command_run():
    import sys

    sys.modules.pop('trovestack.commands.doctor', None)
    manager = cliapp.CommandManager('trovestack.cli')
    assert {'provision', 'cloud up', 'load-image'} <= set(manager.commands)
    assert 'trovestack.commands.doctor' not in sys.modules
    command_class, name, rest = manager.find_command(['doctor', '-f', 'json'])
    assert (name, rest) == ('doctor', ['-f', 'json'])
    command = command_class(mock.Mock(), None, cmd_name='doctor')
    assert command._hooks == [] and command.get_epilog() == ''


def test_commands_get_cliff_formatters_without_a_plugin_scan():
    manager = cliapp.CommandManager('trovestack.cli')
    command_class, _, _ = manager.find_command(['load-image'])
    with mock.patch('stevedore.extension.ExtensionManager.list_entry_points',
                    side_effect=AssertionError('scanned')):
        command = command_class(mock.Mock(), None, cmd_name='load-image')
    assert {'json', 'table', 'value', 'yaml', 'shell'} <= set(
        command._formatter_plugins.names())
