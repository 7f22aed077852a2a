"""Console scripts load-trove-image and activate-trove-image.

Each is a cliff application with one command (the same classes trovestack
runs as ``load-image`` and ``activate``), so app options such as --debug,
-q and -v and the output options -f/-c work the same everywhere.
"""

import sys

from cliff import commandmanager

from load_image import cliapp
from load_image import commands


class _SingleCommandManager(commandmanager.CommandManager):
    """A command manager holding one command under one name."""

    def __init__(self, name, command_class):
        super().__init__(namespace=None)
        self.add_command(name, command_class)

    def load_commands(self, namespace):
        pass


class SingleCommandApp(cliapp.App):
    """A cliff app whose arguments all belong to its only command."""

    def __init__(self, name, command_class):
        self._command_name = name
        super().__init__(
            description=command_class._description,
            version=cliapp.release(),
            command_manager=_SingleCommandManager(
                name, _named(command_class, name)),
            deferred_help=True)

    def run(self, argv):
        if any(arg in ('-h', '--help') for arg in argv):
            argv = ['help', self._command_name]
        else:
            argv = [self._command_name, *argv]
        return super().run(argv)


def _named(command_class, name):
    """The command, with usage and errors under the script's own name."""

    class Named(command_class):
        def get_parser(self, prog_name):
            return super().get_parser(name)

    Named.__name__ = command_class.__name__
    return Named


def load_main(argv=None):
    """Entry point of load-trove-image."""
    return _run('load-trove-image', commands.LoadImage, argv)


def activate_main(argv=None):
    """Entry point of activate-trove-image."""
    return _run('activate-trove-image', commands.ActivateImage, argv)


def _run(name, command_class, argv):
    argv = sys.argv[1:] if argv is None else argv
    return SingleCommandApp(name, command_class).run(argv)
