"""Run a service's ``*-manage`` commands one after another in one process.

Usage: python -m trovestack.cloud.manage SERVICE CONFIG_FILE CMD... [-- CMD...]

Each command is what ``<service>-manage --config-file CONFIG_FILE CMD``
would run; sharing one interpreter saves the import of the service for
every command after the first (keystone needs four, nova two).
"""

import importlib
import sys

MANAGE_MODULES = {
    'keystone': 'keystone.cmd.cli',
    'glance': 'glance.cmd.manage',
    'nova': 'nova.cmd.manage',
    'trove': 'trove.cmd.manage',
}


def split_commands(words: list[str]) -> list[list[str]]:
    """['a', 'b', '--', 'c'] -> [['a', 'b'], ['c']]."""
    commands: list[list[str]] = [[]]
    for word in words:
        if word == '--':
            commands.append([])
        else:
            commands[-1].append(word)
    return [command for command in commands if command]


def run(service: str, config_file: str, commands: list[list[str]]) -> int:
    """Run each command; return the first non-zero exit status, else 0."""
    module = importlib.import_module(MANAGE_MODULES[service])
    for command in commands:
        argv = [f'{service}-manage', '--config-file', config_file, *command]
        sys.argv = argv
        # Each *-manage main() parses the command line into the module's
        # global CONF; clearing it lets the next command parse its own.
        module.CONF.clear()
        try:
            if service == 'keystone':
                status = module.main(argv=argv)
            else:
                status = module.main()
        except SystemExit as exc:
            status = exc.code
        if status:
            return status if isinstance(status, int) else 1
    return 0


def main() -> int:
    service, config_file, *rest = sys.argv[1:]
    return run(service, config_file, split_commands(rest))


if __name__ == '__main__':
    sys.exit(main())
