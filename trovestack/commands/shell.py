"""Console scripts: ``trovestack`` and the single-command tools.

``trovestack`` runs every command registered under the ``trovestack.cli``
entry points; ``load-trove-image``, ``activate-trove-image`` and
``trove-image-builder`` each run one of the same command classes.
"""

import sys

import trovestack
from trovestack.commands import cliapp


class TrovestackApp(cliapp.App):
    """Trove developer tooling: local cloud, guest images, test environment."""

    def __init__(self):
        super().__init__(
            description=trovestack.__doc__,
            command_manager=cliapp.CommandManager('trovestack.cli'))


def main(argv=None):
    """Entry point of trovestack."""
    return cliapp.main(TrovestackApp, argv)


def _single(script, word, command_class, argv):
    return cliapp.main(
        lambda: cliapp.SingleCommandApp(script, command_class, word), argv)


def load_image_main(argv=None):
    """Entry point of load-trove-image."""
    from trovestack.commands import load_image

    return _single('load-trove-image', 'load-image', load_image.LoadImage,
                   argv)


def activate_image_main(argv=None):
    """Entry point of activate-trove-image."""
    from trovestack.commands import load_image

    return _single('activate-trove-image', 'activate',
                   load_image.ActivateImage, argv)


def image_builder_main(argv=None):
    """Entry point of trove-image-builder."""
    from trovestack.commands import build_image

    return _single('trove-image-builder', 'build-image',
                   build_image.BuildImage, argv)


if __name__ == '__main__':
    sys.exit(main())
