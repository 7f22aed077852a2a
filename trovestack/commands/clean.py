"""trovestack clean: remove what trovestack made, and nothing else."""

import logging

from cliff import lister

from trovestack.common import connection
from trovestack.orchestration import cleanup
from trovestack.testenv import flavors

LOG = logging.getLogger(__name__)


class CleanCloud(lister.Lister):
    _description = ('Delete the guest images, datastore versions and test '
                    'flavors trovestack created (found by tag, marker '
                    'properties and exact flavor spec), and what killed '
                    'image builds left on this host (work directories with '
                    'their mounts and loop devices); everything else is '
                    'kept')

    headers = ('Resource Type', 'Name', 'ID', 'Action', 'Detail')

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument(
            '--dry-run', action='store_true',
            help='List what would be deleted without deleting anything')
        parser.add_argument(
            '--flavor-set', choices=(*flavors.FLAVOR_SETS, cleanup.NO_FLAVORS),
            default=flavors.DEFAULT_FLAVOR_SET,
            help='Test flavors to delete: tempest (ds512M..ds4G, which a '
                 'devstack also creates), redstack, all or none '
                 f'(default: {flavors.DEFAULT_FLAVOR_SET})')
        parser.add_argument(
            '--datastore', metavar='<name>', action='append',
            help='Only images (and their versions) of this datastore, '
                 'repeatable (default: every datastore)')
        parser.add_argument(
            '--builds-only', action='store_true',
            help='Only what killed image builds left on this host (work '
                 'directories, mounts, loop devices); no cloud is used')
        connection.add_cloud_arguments(parser)
        return parser

    def take_action(self, parsed_args):
        builds = cleanup.clean_builds(dry_run=parsed_args.dry_run)
        rows, self.failures = builds.rows, builds.failures
        if not parsed_args.builds_only:
            conn = connection.command_connection(
                parsed_args,
                admin_for='clean (Trove management API, flavors)')
            result = cleanup.clean(conn, flavor_set=parsed_args.flavor_set,
                                   datastores=parsed_args.datastore,
                                   dry_run=parsed_args.dry_run)
            rows += result.rows
            self.failures += result.failures
        return self.headers, [(row.kind, row.name, row.id, row.action,
                               row.detail) for row in rows]

    def run(self, parsed_args):
        self.failures = 0
        status = super().run(parsed_args)
        if self.failures:
            LOG.error('Failed to delete %d resource(s); see the failed rows',
                      self.failures)
            return 1
        return status
