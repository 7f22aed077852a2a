"""``trovestack devstack up/down/status/exec/prune``: devstack's real
stack.sh with this plugin, in a systemd container with a network
namespace of its own.

The commands parse, call :mod:`trovestack.devstack_env.environment` and
format; progress goes to stderr.
"""

import argparse
import dataclasses
import logging
import pathlib
import sys

from cliff import command
from cliff import lister
from cliff import show

from trovestack.common import results
from trovestack.devstack_env import cache
from trovestack.devstack_env import environment
from trovestack.devstack_env import layout
from trovestack.orchestration import kickstart
from trovestack.testenv import tempest_runner

LOG = logging.getLogger(__name__)

HEADERS = ('Kind', 'Name', 'Action', 'Detail')


def _progress(text):
    sys.stderr.write(text + '\n')
    sys.stderr.flush()


def _name_argument(parser):
    parser.add_argument(
        '--name', metavar='<name>', default=layout.DEFAULT_NAME,
        type=layout.check_name,
        help='Environment name, 1-12 lower-case letters and digits '
             '(default: %(default)s)')
    return parser


def _rows(rows):
    return HEADERS, [(row.kind, row.name, row.action, row.detail)
                     for row in rows]


class DevstackUp(lister.Lister):
    _description = ('Stage (cached) a Debian rootfs, a local apt repository, '
                    'a wheelhouse and the OpenStack repositories; boot them '
                    'in a systemd container in a network namespace of its '
                    'own and run devstack\'s stack.sh there with a sample\'s '
                    'local.conf and this checkout as the plugin')

    def get_parser(self, prog_name):
        parser = _name_argument(super().get_parser(prog_name))
        parser.add_argument(
            '--sample', metavar='<file>', type=pathlib.Path,
            default=kickstart.SAMPLES_DIR / 'mariadb.conf',
            help='local.conf sample (default: %(default)s)')
        parser.add_argument(
            '--devstack', metavar='<dir>', type=pathlib.Path,
            default=environment.default_devstack_dir(),
            help=f'devstack checkout (default: ${environment.DEVSTACK_ENV} '
                 f'or {environment.DEFAULT_DEVSTACK})')
        image = parser.add_mutually_exclusive_group()
        image.add_argument(
            '--guest-image', metavar='<file>', type=pathlib.Path,
            help='Guest image file for the plugin to load, with its '
                 'datastore images embedded (default: one built here with '
                 'trove-image-builder, the agent of the Trove tree devstack '
                 'installs and the sample\'s datastores embedded)')
        image.add_argument(
            '--placeholder-image', action='store_true',
            help='Load an empty image that boots nothing instead (no '
                 'build; Trove instances can not start)')
        parser.add_argument(
            '--stage-only', action='store_true',
            help='Make the cached artifacts only; boot nothing')
        return parser

    def take_action(self, parsed_args):
        if parsed_args.stage_only:
            rows = environment.stage_only(
                checkout=kickstart.REPO_ROOT,
                devstack_dir=parsed_args.devstack, progress=_progress)
        else:
            rows = environment.up(
                sample=parsed_args.sample, checkout=kickstart.REPO_ROOT,
                devstack_dir=parsed_args.devstack, name=parsed_args.name,
                guest_image=parsed_args.guest_image,
                placeholder=parsed_args.placeholder_image, progress=_progress)
        return _rows(rows)


class DevstackDown(lister.Lister):
    _description = ('Run unstack.sh and clean.sh (when stack.sh ran), then '
                    'stop the container and remove its namespace, mounts, '
                    'cgroups and overlay')

    def get_parser(self, prog_name):
        return _name_argument(super().get_parser(prog_name))

    def take_action(self, parsed_args):
        return _rows(environment.down(name=parsed_args.name))


class DevstackPrune(lister.Lister):
    _description = ('Remove staged artifacts nothing uses any more: not '
                    'the latest staging\'s, no environment\'s, not built '
                    'or used within the hour')

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument(
            '--dry-run', action='store_true',
            help='Show what would be removed; remove nothing')
        return parser

    def take_action(self, parsed_args):
        gone = 'would delete' if parsed_args.dry_run else results.DELETED
        rows = [('artifact', str(entry.path),
                 'kept' if entry.kept_for else gone,
                 f'{entry.size / 2**20:.0f} MiB'
                 + (f', {entry.kept_for}' if entry.kept_for else ''))
                for entry in cache.prune(dry_run=parsed_args.dry_run)]
        return HEADERS, rows


class DevstackExec(command.Command):
    _description = ('Run a command in the devstack container, as the stack '
                    'user (or root), optionally with devstack\'s admin '
                    'credentials; exits with the command\'s status')

    def get_parser(self, prog_name):
        parser = _name_argument(super().get_parser(prog_name))
        who = parser.add_mutually_exclusive_group()
        who.add_argument(
            '--admin', action='store_true',
            help='With devstack\'s admin credentials (openrc admin admin), '
                 'e.g. -- openstack database instance list')
        who.add_argument('--root', action='store_true',
                         help='As root instead of the stack user')
        parser.add_argument('argv', nargs=argparse.REMAINDER,
                            metavar='-- COMMAND ...',
                            help='The command and its arguments')
        return parser

    def take_action(self, parsed_args):
        argv = parsed_args.argv
        if argv[:1] == ['--']:
            argv = argv[1:]
        return environment.execute(argv, name=parsed_args.name,
                                   admin=parsed_args.admin,
                                   root=parsed_args.root)


class DevstackTempest(command.Command):
    _description = ('Run trove-tempest-plugin\'s tests with devstack\'s own '
                    'tempest in the devstack container (its venv and '
                    'tempest.conf as stack.sh made them); exits with '
                    'tempest\'s status')

    def get_parser(self, prog_name):
        parser = _name_argument(super().get_parser(prog_name))
        parser.add_argument(
            '--profile', choices=sorted(tempest_runner.PROFILES),
            default='basic',
            help='Which scenarios (default: basic, test_instance_basic)')
        parser.add_argument(
            '--datastore', action='append', default=[],
            choices=tempest_runner.DATASTORES,
            help='Only this datastore\'s test classes (repeatable; default: '
                 'every datastore tempest.conf enables)')
        parser.add_argument(
            '--regex', metavar='<regex>',
            help='Tests to run, instead of --profile and --datastore')
        parser.add_argument(
            '--parallel', action='store_true',
            help='Run tests in parallel (default: one at a time, one guest '
                 'at a time)')
        return parser

    def take_action(self, parsed_args):
        regex = parsed_args.regex or tempest_runner.profile_regex(
            parsed_args.profile, parsed_args.datastore)
        return environment.tempest(regex, name=parsed_args.name,
                                   serial=not parsed_args.parallel)


class DevstackStatus(show.ShowOne):
    _description = ('Show the devstack container: systemd\'s state, '
                    'stack.sh\'s outcome (phase and failing command), '
                    'Trove\'s API and datastore versions, and what is left '
                    'on the host')

    def get_parser(self, prog_name):
        parser = _name_argument(super().get_parser(prog_name))
        parser.add_argument(
            '--no-checks', action='store_true',
            help='Do not ask Trove inside the container')
        return parser

    def take_action(self, parsed_args):
        found = environment.status(name=parsed_args.name,
                                   checks=not parsed_args.no_checks)
        fields = dataclasses.asdict(found)
        return tuple(fields), tuple(fields.values())
