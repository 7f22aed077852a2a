"""Commands that prepare a cloud for Trove's tests: flavors, test-config,
test-init. Each converges on re-run and has --dry-run."""

import logging

from cliff import lister
from osc_lib import exceptions

from load_image import auth
from trovestack import cliapp
from trovestack import testenv
from trovestack.testenv import datastores
from trovestack.testenv import flavors
from trovestack.testenv import keypair
from trovestack.testenv import quotas
from trovestack.testenv import secgroup
from trovestack.testenv import tempest_conf
from trovestack.testenv import trove_test_conf

LOG = logging.getLogger(__name__)

CHANGE_COLUMNS = ('resource', 'name', 'action', 'detail')
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
        '--test-cloud', metavar='<cloud>', action='append', default=[],
        help='Further clouds.yaml entry whose user goes into the Trove '
             'test config users, repeatable (default: none)')


def _fail(exc):
    """Turn a library error into the one-line error the user sees."""
    return exceptions.CommandError(str(exc))


class _TestEnvCommand(lister.Lister):
    """Shared connection handling; subclasses implement _run()."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        auth.add_cloud_arguments(parser)
        return parser

    def take_action(self, parsed_args):
        try:
            conn = auth.connect_from_args(parsed_args)
            return self._run(conn, parsed_args)
        except (auth.CloudError, testenv.TestEnvError) as exc:
            raise _fail(exc) from exc

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


class _TestConfig:
    """Validated inputs for the tempest and Trove test configs."""

    def __init__(self, conn, parsed_args, *, flavor_ids, flavor_names):
        self.parsed_args = parsed_args
        self.wanted = bool(parsed_args.tempest_conf
                           or parsed_args.trove_test_conf)
        if not self.wanted:
            return
        for path in (parsed_args.tempest_conf, parsed_args.trove_test_conf):
            if path:
                testenv.check_directory(path)
        self.choices = datastores.choose(auth.trove_client(conn),
                                         parsed_args.datastore)
        self.settings = tempest_conf.derive_settings(
            conn, self.choices, flavor_id=parsed_args.flavor_id,
            resize_flavor_id=parsed_args.resize_flavor_id,
            flavor_ids=flavor_ids,
            shared_network=parsed_args.shared_network,
            volume_type=parsed_args.volume_type)
        self.trove_values = None
        if parsed_args.trove_test_conf:
            user_conns = [auth.connect(cloud=name,
                                       region_name=parsed_args.os_region_name,
                                       api_timeout=parsed_args.api_timeout)
                          for name in parsed_args.test_cloud]
            self.trove_values = trove_test_conf.build(
                conn, self.choices[0], user_conns=user_conns,
                flavor_names=flavor_names)

    def apply(self, *, dry_run):
        if not self.wanted:
            return [testenv.Change('test-config', '-', testenv.SKIPPED,
                                   'no --tempest-conf/--trove-test-conf')]
        changes = []
        if self.parsed_args.tempest_conf:
            changes.extend(tempest_conf.merge(
                self.parsed_args.tempest_conf, self.settings,
                dry_run=dry_run))
        if self.trove_values is not None:
            changes.append(trove_test_conf.write(
                self.parsed_args.trove_test_conf, self.trove_values,
                dry_run=dry_run))
        return changes


def _flavor_inventory(conn):
    """(ids, names) of the flavors that exist."""
    existing = list(conn.compute.flavors(details=False, is_public=None))
    return {f.id for f in existing}, {f.name for f in existing}


def _rows(changes):
    return CHANGE_HEADERS, [tuple(getattr(c, col) for col in CHANGE_COLUMNS)
                            for c in changes]


class WriteTestConfig(_TestEnvCommand):
    _description = ('Write tempest.conf [database] settings (and optionally '
                    "Trove's JSON test config) from what Trove has")

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        _add_test_config_arguments(parser, tempest_required=True)
        _add_dry_run(parser)
        return parser

    def _run(self, conn, parsed_args):
        flavor_ids, flavor_names = _flavor_inventory(conn)
        config = _TestConfig(conn, parsed_args, flavor_ids=flavor_ids,
                             flavor_names=flavor_names)
        return _rows(config.apply(dry_run=parsed_args.dry_run))


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
            help='Project Trove creates guests in, for compute, volume and '
                 f'network quotas (default: {quotas.SERVICE_PROJECT})')
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
            help='Management security group name '
                 f'(default: {secgroup.DEFAULT_GROUP_NAME})')
        _add_test_config_arguments(parser, tempest_required=False)
        _add_dry_run(parser)
        return parser

    def _run(self, conn, parsed_args):
        dry_run = parsed_args.dry_run
        auth.require_admin(conn, 'test-init (flavors, quotas)')
        trove = auth.trove_client(conn)
        # Everything that can refuse is checked before anything changes.
        specs = flavors.flavor_specs(parsed_args.flavor_set)
        flavors.plan_flavors(conn, specs, replace=parsed_args.replace)
        wants = quotas.wanted(dict(parsed_args.quota))
        quota_args = dict(service_project=parsed_args.service_project,
                          test_project=parsed_args.test_project)
        quotas.ensure_quotas(conn, trove, wants, dry_run=True, **quota_args)
        if parsed_args.public_key:
            keypair.ensure_keypair(
                conn, parsed_args.keypair_name, parsed_args.public_key,
                replace=parsed_args.replace, dry_run=True)
        flavor_ids, flavor_names = _flavor_inventory(conn)
        config = _TestConfig(
            conn, parsed_args,
            flavor_ids=flavor_ids | {s.id for s in specs},
            flavor_names=flavor_names | {s.name for s in specs})

        changes = [r.to_change() for r in flavors.ensure_flavors(
            conn, specs, replace=parsed_args.replace, dry_run=dry_run)]
        changes += quotas.ensure_quotas(conn, trove, wants, dry_run=dry_run,
                                        **quota_args)
        if parsed_args.public_key:
            changes.append(keypair.ensure_keypair(
                conn, parsed_args.keypair_name, parsed_args.public_key,
                replace=parsed_args.replace, dry_run=dry_run))
        else:
            changes.append(testenv.Change('keypair', '-', testenv.SKIPPED,
                                          'no --public-key'))
        changes += secgroup.ensure_security_group(
            conn, parsed_args.security_group, dry_run=dry_run)
        changes += config.apply(dry_run=dry_run)
        for change in changes:
            if change.action == testenv.SKIPPED:
                LOG.warning('Skipped %s %s: %s', change.resource,
                            change.name, change.detail)
        return _rows(changes)
