"""The ``trovestack`` command line: a cliff application over entry points."""

import sys

from cliff import app
from cliff import commandmanager

import trovestack


class TrovestackApp(app.App):
    """Trove developer tooling: local cloud, guest images, test environment."""

    def __init__(self):
        super().__init__(
            description=trovestack.__doc__,
            version=_version(),
            command_manager=commandmanager.CommandManager('trovestack.cli'),
            deferred_help=True,
        )


def _version():
    from importlib import metadata

    try:
        return metadata.version('trovestack')
    except metadata.PackageNotFoundError:
        return 'unknown'


def main(argv=None):
    if argv is None:
        argv = sys.argv[1:]
    return TrovestackApp().run(argv)


if __name__ == '__main__':
    sys.exit(main())
