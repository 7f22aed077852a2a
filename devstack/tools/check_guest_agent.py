#!/usr/bin/env python3
"""Check the guest agent source a guest image build will take.

devstack's pre-install and install phases run this file with devstack's
Python, before this project is installed: it needs only the standard
library and trovestack.cloud.trove_source, imported from this checkout.
A bad setting is one line on stderr naming the setting, and exit status 1.

pre-install: the source is one the image builder knows; pip has a release
number, git a repository; a local tree is a Trove source tree whose
``trove`` package compiles.  The default tree, ``$TROVE_DIR``, may not be
cloned yet: the install phase checks it again (``--phase install``), once
``git_clone`` has run.
"""

import argparse
import pathlib
import re
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))
from trovestack.cloud import trove_source  # noqa: E402 - after the path above

SOURCES = ('local', 'pip', 'git')
PHASES = ('pre-install', 'install')
# A release as PyPI spells it: 26.0.0, 25.0.1, 26.0.0rc1, 26.0.0.0b1
RELEASE = re.compile(r'^[0-9]+(\.[0-9]+)*((a|b|rc)[0-9]+)?$')
BRANCH = re.compile(r'^[A-Za-z0-9][A-Za-z0-9._/-]*$')


class SettingError(Exception):
    """A bad setting, in one line."""


def check(source, path='', version='', repo='', branch='', trove_dir='',
          phase='pre-install'):
    """None when the settings can build a guest agent; SettingError
    naming the first bad one otherwise."""
    if source not in SOURCES:
        raise SettingError(f"TROVE_GUEST_AGENT_SOURCE='{source}' is not one "
                           f"of: {' '.join(SOURCES)}")
    if source == 'pip':
        if version and not RELEASE.match(version):
            raise SettingError(
                f"TROVE_GUEST_AGENT_VERSION='{version}' is not a Trove "
                'release (e.g. 26.0.0)')
    elif source == 'git':
        if not repo:
            raise SettingError(
                'TROVE_GUEST_AGENT_SOURCE=git needs TROVE_GUEST_AGENT_REPO: '
                'the repository to clone the guest agent from')
        if not BRANCH.match(branch or ''):
            raise SettingError(f"TROVE_GUEST_AGENT_BRANCH='{branch}' is not "
                               'a branch or tag name')
    else:
        _check_tree(path, trove_dir, phase)


def _check_tree(path, trove_dir, phase):
    if not path:
        raise SettingError('TROVE_GUEST_AGENT_SOURCE=local needs '
                           'TROVE_GUEST_AGENT_PATH: a Trove source tree')
    tree = pathlib.Path(path)
    if not tree.exists():
        cloned_later = phase == 'pre-install' and trove_dir and \
            tree.absolute() == pathlib.Path(trove_dir).absolute()
        if cloned_later:
            return  # the install phase clones $TROVE_DIR, then checks it
        raise SettingError(f"TROVE_GUEST_AGENT_PATH='{path}' does not exist")
    try:
        trove_source.check_tree(tree)
        trove_source.check_compiles(tree)
    except trove_source.LocalCloudError as exc:
        raise SettingError(f'TROVE_GUEST_AGENT_PATH: {exc}') from None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--source', required=True)
    parser.add_argument('--path', default='')
    parser.add_argument('--version', default='')
    parser.add_argument('--repo', default='')
    parser.add_argument('--branch', default='')
    parser.add_argument('--trove-dir', default='')
    parser.add_argument('--phase', choices=PHASES, default='pre-install')
    args = parser.parse_args(argv)
    try:
        check(args.source, path=args.path, version=args.version,
              repo=args.repo, branch=args.branch, trove_dir=args.trove_dir,
              phase=args.phase)
    except SettingError as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
