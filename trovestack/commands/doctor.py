"""trovestack doctor (alias status): is this cloud ready for Trove tests?"""

import logging

from cliff import lister

from trovestack.commands import cliapp
from trovestack.common import connection
from trovestack.orchestration import doctor
from trovestack.testenv import datastores as testenv_datastores
from trovestack.testenv import flavors

LOG = logging.getLogger(__name__)


class CheckCloud(lister.Lister):
    _description = ('Check that a cloud is ready for Trove tests: services, '
                    'guest images, datastores, flavors and tempest config; '
                    'exits non-zero naming what is missing; warns when an '
                    "image's guest agent is not the control plane's Trove")

    headers = ('Check', 'Result', 'Detail')

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument(
            '--datastore', metavar='<name>[:<version>]', action='append',
            type=cliapp.argument_type(
                testenv_datastores.parse_datastore_arg),
            help='Datastore to check, repeatable; without a version its '
                 'default version is checked (default: every registered '
                 'datastore)')
        parser.add_argument(
            '--tempest-conf', metavar='<path>',
            help='tempest.conf to check for [database] and '
                 '[service_available] trove (default: not checked)')
        parser.add_argument(
            '--flavor-set', choices=flavors.FLAVOR_SETS, default='tempest',
            help='Test flavors that must exist: tempest, redstack or all '
                 '(default: tempest)')
        parser.add_argument(
            '--trove-dir', metavar='<dir>',
            help="The Trove source tree the control plane runs (devstack: "
                 '$TROVE_DIR), which the guest agent of each image is '
                 "compared with (default: the local cloud's Trove when this "
                 'is the local cloud, else unknown)')
        parser.add_argument(
            '--state-dir', metavar='<dir>',
            help="The local cloud's state directory (default: "
                 '$TROVESTACK_STATE_DIR or $XDG_STATE_HOME/trovestack/cloud)')
        connection.add_cloud_arguments(parser)
        return parser

    def take_action(self, parsed_args):
        conn = connection.command_connection(parsed_args)
        control = doctor.control_plane(conn, trove_dir=parsed_args.trove_dir,
                                       state_dir=parsed_args.state_dir)
        checks = doctor.run_checks(
            conn, datastores=parsed_args.datastore,
            tempest_conf=parsed_args.tempest_conf,
            flavor_set=parsed_args.flavor_set, control=control)
        self.problems = doctor.problems(checks)
        for check in doctor.warnings(checks):
            LOG.warning('%s: %s', check.name, check.detail)
        return self.headers, [(c.name, c.action, c.detail) for c in checks]

    def run(self, parsed_args):
        self.problems = []
        status = super().run(parsed_args)
        if self.problems:
            LOG.error('Not ready for Trove tests: %d check(s) not ok: %s',
                      len(self.problems),
                      '; '.join(f'{c.name}: {c.detail}'
                                for c in self.problems))
            return 1
        return status
