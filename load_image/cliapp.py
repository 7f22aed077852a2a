"""The cliff application base shared by every console script here."""

import argparse
import sys

from cliff import app


def release():
    """The installed release of this distribution."""
    from importlib import metadata

    try:
        return metadata.version('trovestack')
    except metadata.PackageNotFoundError:
        return 'unknown'


class App(app.App):
    """A cliff App whose commands may have their own --version option.

    cliff's app-level --version is taken from anywhere on the command line,
    so ``load-image --version 8.4`` would print the release instead; here it
    is only honoured as the first argument.
    """

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
