"""Commands that prepare a cloud for Trove's tests: flavors, test-config,
test-init. Each converges on re-run and has --dry-run."""

import logging

from cliff import lister

from trovestack.commands import cliapp
from trovestack.common import connection
from trovestack.orchestration import testconfig
from trovestack.testenv import datastores
from trovestack.testenv import flavors
from trovestack.testenv import keypair
from trovestack.testenv import quotas
from trovestack.testenv import secgroup
from trovestack.testenv import tempest_conf

LOG = logging.getLogger(__name__)

CHANGE_HEADERS = ('Resource', 'Name', 'Action', 'Detail')


def _add_dry_run(parser):
    parser.add_argument(
        '--dry-run', action='store_true',
        help='Show what would change without changing anything')


def _add_flavor_arguments(parser):
    parser.add_argument(
        '--flavor-set', choices=flavors.FLAVOR_SETS,
        default=flavors.DEFAULT_FLAVOR_SET,
        help='Flavors to ensure: tempest (ds512M..ds4G, ids d1..d4), '
             'redstack (test.* with .resize and ephemeral variants) or all '
             f'(default: {flavors.DEFAULT_FLAVOR_SET})')


def _add_test_config_arguments(parser, *, tempest_required):
    parser.add_argument(
        '--tempest-conf', metavar='<path>', required=tempest_required,
        help='tempest.conf to merge [database] and [service_available] into '
             '(created when missing; its directory must exist)'
             + ('' if tempest_required else ' (default: not written)'))
    parser.add_argument(
        '--trove-test-conf', metavar='<path>',
        help="Write Trove's JSON test config here, mode 0600 "
             '(default: not written)')
    parser.add_argument(
        '--datastore', metavar='<name>[:<version>]', action='append',
        type=cliapp.argument_type(datastores.parse_datastore_arg),
        help='Datastore to test, repeatable; the version defaults to the '
             "datastore's default version (default: every registered "
             'datastore with a default version)')
    parser.add_argument(
        '--flavor-id', metavar='<id>',
        default=tempest_conf.DEFAULT_FLAVOR_ID,
        help='Flavor for test instances '
             f'(default: {tempest_conf.DEFAULT_FLAVOR_ID})')
    parser.add_argument(
        '--resize-flavor-id', metavar='<id>',
        default=tempest_conf.DEFAULT_RESIZE_FLAVOR_ID,
        help='Flavor to resize test instances to '
             f'(default: {tempest_conf.DEFAULT_RESIZE_FLAVOR_ID})')
    parser.add_argument(
        '--shared-network', metavar='<network>',
        help='Network for test instances (default: "private" if the '
             'network service has it, else not set)')
    parser.add_argument(
        '--volume-type', metavar='<type>',
        help="Volume type for test instances (default: the volume "
             "service's default type, else not set)")
    parser.add_argument(
        '--with-credentials', action='store_true',
        help='Also write [auth], [identity] and [service_available] for '
             'this cloud: tempest makes its test users with this '
             "cloud's account (an admin), whose password goes into the "
             'file (made 0600) (default: [database] only)')
    parser.add_argument(
        '--test-cloud', metavar='<cloud>', action='append', default=[],
        help='Further clouds.yaml entry whose user goes into the Trove '
             'test config users, repeatable (default: none)')


class _TestEnvCommand(lister.Lister):
    """Shared connection handling; subclasses implement _run()."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        connection.add_cloud_arguments(parser)
        return parser

    def take_action(self, parsed_args):
        return self._run(connection.connect_from_args(parsed_args),
                         parsed_args)

    def _run(self, conn, parsed_args):
        raise NotImplementedError


class CreateFlavors(_TestEnvCommand):
    _description = 'Create the Nova flavors Trove tests expect'

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        _add_flavor_arguments(parser)
        parser.add_argument(
            '--replace', action='store_true',
            help='Delete and recreate flavors whose id or name is taken '
                 'with a different spec (default: fail and change nothing)')
        _add_dry_run(parser)
        return parser

    def _run(self, conn, parsed_args):
        results = flavors.ensure_flavors(
            conn, flavors.flavor_specs(parsed_args.flavor_set),
            replace=parsed_args.replace, dry_run=parsed_args.dry_run)
        headers = ('ID', 'Name', 'RAM', 'Disk', 'VCPUs', 'Ephemeral',
                   'Action')
        rows = [(r.spec.id, r.spec.name, r.spec.ram, r.spec.disk,
                 r.spec.vcpus, r.spec.ephemeral, r.action) for r in results]
        return headers, rows


def _config_request(parsed_args):
    return cliapp.from_options(
        testconfig.TestConfigRequest, parsed_args,
        datastores=parsed_args.datastore,
        test_clouds=tuple(parsed_args.test_cloud),
        region_name=parsed_args.os_region_name)


def rows_table(rows):
    """(headers, rows) of result Rows, under the test commands' headers."""
    return CHANGE_HEADERS, [(r.kind, r.name, r.action, r.detail)
                            for r in rows]


class WriteTestConfig(_TestEnvCommand):
    _description = ('Write tempest.conf [database] settings (and optionally '
                    "Trove's JSON test config) from what Trove has")

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        _add_test_config_arguments(parser, tempest_required=True)
        _add_dry_run(parser)
        return parser

    def _run(self, conn, parsed_args):
        return rows_table(testconfig.write_test_config(
            conn, _config_request(parsed_args), dry_run=parsed_args.dry_run))


class InitTestEnvironment(_TestEnvCommand):
    _description = ('Prepare a cloud for Trove tests: flavors, quotas, '
                    'keypair, security group and test configuration')

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        _add_flavor_arguments(parser)
        parser.add_argument(
            '--replace', action='store_true',
            help='Recreate flavors and the keypair that exist with a '
                 'different spec or key (default: fail and change nothing)')
        parser.add_argument(
            '--quota', metavar='<service>.<resource>=<n>', action='append',
            type=cliapp.argument_type(quotas.parse_quota_arg), default=[],
            help='Override a quota minimum, repeatable; -1 is unlimited '
                 '(defaults: ' + ', '.join(
                     f'{s}.{r}={n}' for s, r, n, _ in quotas.QUOTA_TABLE)
                 + ')')
        parser.add_argument(
            '--service-project', metavar='<project>',
            default=quotas.SERVICE_PROJECT,
            help='Project Trove creates guests in (its service credentials'
                 "' project): compute, volume and network quotas and the "
                 'management security group go there '
                 f'(default: {quotas.SERVICE_PROJECT})')
        parser.add_argument(
            '--test-project', metavar='<project>',
            default=quotas.TEST_PROJECT,
            help='Project the tests run in, for Trove quotas '
                 f'(default: {quotas.TEST_PROJECT})')
        parser.add_argument(
            '--public-key', metavar='<path>',
            help='OpenSSH public key file for the guest keypair '
                 '(default: no keypair)')
        parser.add_argument(
            '--keypair-name', metavar='<name>',
            default=keypair.DEFAULT_KEYPAIR_NAME,
            help=f'Keypair name (default: {keypair.DEFAULT_KEYPAIR_NAME})')
        parser.add_argument(
            '--security-group', metavar='<name>',
            default=secgroup.DEFAULT_GROUP_NAME,
            help="Management security group on guests' ports, made in the "
                 'service project with the rules Trove needs '
                 f'(default: {secgroup.DEFAULT_GROUP_NAME})')
        _add_test_config_arguments(parser, tempest_required=False)
        _add_dry_run(parser)
        return parser

    def _run(self, conn, parsed_args):
        environment = cliapp.from_options(
            testconfig.EnvironmentRequest, parsed_args,
            quota_overrides=dict(parsed_args.quota))
        return rows_table(testconfig.init_test_environment(
            conn, environment, _config_request(parsed_args),
            dry_run=parsed_args.dry_run))
