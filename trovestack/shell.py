"""The ``trovestack`` command line: a cliff application over entry points."""

import sys

from cliff import commandmanager

import trovestack
from load_image import cliapp


class TrovestackApp(cliapp.App):
    """Trove developer tooling: local cloud, guest images, test environment."""

    def __init__(self):
        super().__init__(
            description=trovestack.__doc__,
            version=cliapp.release(),
            command_manager=commandmanager.CommandManager('trovestack.cli'),
            deferred_help=True,
        )


def main(argv=None):
    return cliapp.main(TrovestackApp, argv)


if __name__ == '__main__':
    sys.exit(main())
