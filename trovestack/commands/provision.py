"""``trovestack provision``: the whole chain, in one process.

The work is trovestack.orchestration.provision.provision(); this command
parses and formats.  Without ``--os-cloud`` (and without ``$OS_CLOUD``) it
provisions the local control plane, starting it first.
"""

import logging

from cliff import lister

from trovestack.commands import cliapp
from trovestack.commands import cloud as cloud_commands
from trovestack.common import connection
from trovestack.images.guest import guest_agent
from trovestack.orchestration import provision
from trovestack.testenv import datastores

LOG = logging.getLogger(__name__)
COLUMNS = ('Step', 'Subject', 'Result')


class Provision(lister.Lister):
    _description = ('Provision a cloud for Trove tests: guest image, '
                    'datastore versions, flavors and test configuration '
                    '(the local cloud unless --os-cloud is given)')

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument(
            'datastores', metavar='<datastore>[:<version>]', nargs='+',
            type=cliapp.argument_type(datastores.parse_datastore_arg),
            help='Datastores to register; the version defaults to the image '
                 "builder plugin's default; the first is Trove's default "
                 'datastore for tests')
        parser.add_argument(
            '--image', metavar='<image-file>',
            help='Use this guest image instead of building one '
                 '(default: build with trove-image-builder)')
        parser.add_argument(
            '--image-dir', metavar='<dir>',
            help='Where built images go (default: the image builder\'s)')
        parser.add_argument(
            '--guest-agent-source', dest='agent_source',
            choices=guest_agent.SOURCES,
            help='Where the built image\'s guest agent comes from: pip '
                 '(the release), git or local (a Trove source tree) '
                 '(default: the Trove tree the local cloud runs, '
                 '`cloud up --trove-source`, else pip)')
        parser.add_argument(
            '--guest-agent-ref', dest='agent_ref', metavar='<ref>',
            help='pip: Trove version; git: branch or tag (as '
                 'trove-image-builder)')
        parser.add_argument(
            '--guest-agent-path', dest='agent_path', metavar='<url-or-dir>',
            help='git: repository URL; local: Trove source tree')
        parser.add_argument(
            '--tempest-conf', metavar='<path>',
            help='tempest.conf to write or merge into (default: '
                 '<state-dir>/tempest.conf on the local cloud, else '
                 './tempest.conf)')
        parser.add_argument(
            '--trove-test-conf', metavar='<path>',
            help="Trove's JSON test config (default: beside tempest.conf, "
                 'as trove-test.json)')
        parser.add_argument(
            '--dry-run', action='store_true',
            help='Only list the steps, with their equivalent commands')
        cloud_commands.add_state_dir_argument(parser)
        cloud_commands.add_base_port_argument(parser)
        connection.add_cloud_arguments(parser)
        return parser

    def take_action(self, parsed_args):
        request = cliapp.from_options(
            provision.ProvisionRequest, parsed_args,
            region_name=parsed_args.os_region_name)
        rows = provision.provision(request, dry_run=parsed_args.dry_run)
        return COLUMNS, [(row.kind, row.name, row.action) for row in rows]
