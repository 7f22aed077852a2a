"""The one cliff application base of every console script here.

``trovestack`` is an :class:`App` over the ``trovestack.cli`` entry points;
``load-trove-image``, ``activate-trove-image`` and ``trove-image-builder``
are :class:`SingleCommandApp` instances running one of the same command
classes.  Library code raises :class:`~trovestack.common.errors.UserError`;
:meth:`App.run_subcommand` is the one place that turns it into a one-line
message and its exit code (followed by the error's ``details``, if it has
any: diagnostics that explain it).

``--version``: several commands have a ``--version`` option of their own
(the datastore version of ``load-image``), so cliff's app-level
``--version``, which argparse would take from anywhere on the line, is
removed; the release is printed when ``--version`` is the first argument of
``trovestack`` or the only argument of a single-command script.
"""

import argparse
import inspect
import logging
import sys

from cliff import app
from cliff import commandmanager

from trovestack.common import errors

# App-level options a single-command script accepts anywhere on its line.
APP_FLAGS = ('-v', '--verbose', '-q', '--quiet', '--debug')
# Libraries that log, as warnings, what our one-line errors already say
# (format inspector safety checks, keystoneauth version discovery); they
# speak again with --debug or -vv.
CHATTY_LOGGERS = ('keystoneauth', 'openstack', 'stevedore', 'urllib3',
                  'oslo_utils.imageutils.format_inspector')


def release():
    """The installed release of this distribution."""
    from importlib import metadata

    try:
        return metadata.version('trovestack')
    except metadata.PackageNotFoundError:
        return 'unknown'


class App(app.App):
    """A cliff App: commands own --version; UserError -> one line + exit."""

    def __init__(self, description, command_manager):
        super().__init__(description=description, version=release(),
                         command_manager=command_manager, deferred_help=True)
        self._error = None

    def build_option_parser(self, description, version, argparse_kwargs=None):
        parser = super().build_option_parser(
            description, version, argparse_kwargs)
        for action in list(parser._actions):
            if '--version' in action.option_strings:
                parser._remove_action(action)
                for option in action.option_strings:
                    parser._option_string_actions.pop(option, None)
        return parser

    def run(self, argv):
        if argv[:1] == ['--version']:
            self.stdout.write(f'{self.parser.prog} {release()}\n')
            return 0
        return super().run(argv)

    def prepare_to_run_command(self, cmd):
        if not self.options.debug and self.options.verbose_level < 2:
            for name in CHATTY_LOGGERS:
                logging.getLogger(name).setLevel(logging.ERROR)

    def clean_up(self, cmd, result, err):
        self._error = err
        # After a UserError's one line (logged by now), what explains it.
        details = getattr(err, 'details', '')
        if isinstance(err, errors.UserError) and details:
            self.stderr.write(details.rstrip('\n') + '\n')

    def run_subcommand(self, argv):
        # cliff logs the error's message (its traceback only with --debug)
        # and returns 1; a UserError may ask for another exit code.
        self._error = None
        result = super().run_subcommand(argv)
        if isinstance(self._error, errors.UserError):
            return self._error.exit_code
        return result


class CommandManager(commandmanager.CommandManager):
    """cliff's command manager without the plugin machinery one
    distribution does not use, which was most of a short run's start-up:

    * commands come from this distribution's own entry points, imported
      when run (stevedore reads every installed package's entry points and
      imports every command, and rebuilds its cache whenever the checkout
      changes);
    * the command found looks for no command hooks, names no plugin in its
      epilog and takes its output formatters from cliff's own entry points
      (cliff searches all installed packages for each).
    """

    def load_commands(self, namespace):
        from importlib import metadata

        try:
            entry_points = metadata.distribution('trovestack').entry_points
        except metadata.PackageNotFoundError:  # not installed: scan all
            super().load_commands(namespace)
            return
        self.group_list.append(namespace)
        for entry_point in entry_points.select(group=namespace):
            self.commands[entry_point.name.replace('_', ' ')] = entry_point

    def find_command(self, argv):
        command_class, name, args = super().find_command(argv)
        return _without_plugins(command_class), name, args


def _without_plugins(command_class):
    """command_class minus cliff's hook and plugin-epilog lookups."""
    from cliff import command
    from cliff import display

    members = {'_load_hooks': _no_hooks}
    if command_class.get_epilog is command.Command.get_epilog:
        members['get_epilog'] = _own_epilog
    if issubclass(command_class, display.DisplayCommandBase):
        members['_load_formatter_plugins'] = _cliff_formatters
    lean = type(command_class.__name__, (command_class,), members)
    lean.__module__ = command_class.__module__
    return lean


def _no_hooks(self):
    self._hooks = []


def _own_epilog(self):
    return self._epilog or ''


def _cliff_formatters(self):
    """The output formatters cliff ships (json, table, value, yaml...), as
    the stevedore manager cliff expects, without scanning other packages."""
    from importlib import metadata

    from stevedore import extension

    namespace = self.formatter_namespace
    formatters = []
    for entry_point in metadata.distribution('cliff').entry_points.select(
            group=namespace):
        plugin = entry_point.load()
        formatters.append(extension.Extension(
            entry_point.name, entry_point, plugin, plugin()))
    return extension.ExtensionManager.make_test_instance(
        formatters, namespace=namespace)


class _SingleCommandManager(CommandManager):
    """A command manager holding one command under one name."""

    def __init__(self, name, command_class):
        super().__init__(namespace=None)
        self.add_command(name, command_class)

    def load_commands(self, namespace):
        pass


class SingleCommandApp(App):
    """A console script whose arguments all belong to one command.

    The command is also reachable by its word (``trove-image-builder
    build-image --list``); ``help`` and ``complete`` are cliff's; -h/--help
    anywhere shows the command's help; app flags may come anywhere.
    """

    def __init__(self, script, command_class, word):
        self.script = script
        self.word = word
        super().__init__(
            description=command_class._description,
            command_manager=_SingleCommandManager(
                word, _named(command_class, script)))

    def command_argv(self, argv):
        """argv for cliff: app flags first, then the command word."""
        argv = list(argv)
        if argv == ['--version'] or argv[:1] in (['help'], ['complete']):
            return argv
        flags = [arg for arg in argv if arg in APP_FLAGS]
        rest = [arg for arg in argv if arg not in APP_FLAGS]
        if rest[:1] == [self.word]:
            rest = rest[1:]
        if '-h' in rest or '--help' in rest:
            return flags + ['help', self.word]
        return flags + [self.word] + rest

    def run(self, argv):
        return super().run(self.command_argv(argv))


def _named(command_class, script):
    """The command, with usage and errors under the script's own name."""

    class Named(command_class):
        def get_parser(self, prog_name):
            return super().get_parser(script)

    Named.__name__ = command_class.__name__
    return Named


def from_options(function, parsed_args, **values):
    """Call ``function`` (or a dataclass) with the parsed options whose
    names match its parameters; ``values`` give the others (renamed or
    converted options)."""
    parameters = inspect.signature(function).parameters
    options = {name: getattr(parsed_args, name) for name in parameters
               if name not in values and hasattr(parsed_args, name)}
    return function(**options, **values)


def argument_type(parse):
    """An argparse type= from a parser that raises ValueError."""
    def convert(value):
        try:
            return parse(value)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    convert.__name__ = parse.__name__
    return convert


def _positive_int(value):
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise ValueError(f'{value!r} is not a positive whole number')
    return number


positive_int = argument_type(_positive_int)


def main(app_factory, argv=None):
    """Run the app made by app_factory with argv (default: sys.argv)."""
    return app_factory().run(sys.argv[1:] if argv is None else argv)
