"""``trove-image-builder``: a cliff app whose one command is build-image."""

import sys

from cliff import app
from cliff import commandmanager

from load_image import cliapp
from trovestack.imagebuild import commands

COMMAND = 'build-image'
_APP_FLAGS = ('-v', '--verbose', '-q', '--quiet', '--debug')
_PASS_THROUGH = ('help', 'complete', '--version')


class ImageBuilderApp(app.App):
    """Build Trove guest images with diskimage-builder."""

    def __init__(self):
        manager = commandmanager.CommandManager('trovestack.image_builder.cli')
        manager.add_command(COMMAND, commands.BuildImage)
        super().__init__(description=self.__doc__, version=cliapp.release(),
                         command_manager=manager, deferred_help=True)


def command_argv(argv):
    """Put app-level flags first and the build-image command after them."""
    if argv and argv[0] in _PASS_THROUGH + (COMMAND,):
        return list(argv)
    flags = [a for a in argv if a in _APP_FLAGS]
    rest = [a for a in argv if a not in _APP_FLAGS]
    return flags + [COMMAND] + rest


def main(argv=None):
    if argv is None:
        argv = sys.argv[1:]
    return ImageBuilderApp().run(command_argv(argv))


if __name__ == '__main__':
    sys.exit(main())
