"""trovestack clean: remove what trovestack made, and nothing else."""

import logging

from cliff import lister
from osc_lib import exceptions

from load_image import auth
from load_image import datastores as ds_registry
from trovestack import cleanup
from trovestack.testenv import flavors

LOG = logging.getLogger(__name__)

NO_FLAVORS = 'none'


class CleanCloud(lister.Lister):
    _description = ('Delete the guest images, datastore versions and test '
                    'flavors trovestack created (found by tag, marker '
                    'properties and exact flavor spec); everything else '
                    'is kept')

    columns = ('resource_type', 'name', 'id', 'action', 'detail')
    headers = ('Resource Type', 'Name', 'ID', 'Action', 'Detail')

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument(
            '--dry-run', action='store_true',
            help='List what would be deleted without deleting anything')
        parser.add_argument(
            '--flavor-set', choices=(*flavors.FLAVOR_SETS, NO_FLAVORS),
            default=flavors.DEFAULT_FLAVOR_SET,
            help='Test flavors to delete: tempest (ds512M..ds4G, which a '
                 'devstack also creates), redstack, all or none '
                 f'(default: {flavors.DEFAULT_FLAVOR_SET})')
        parser.add_argument(
            '--datastore', metavar='<name>', action='append',
            help='Only images (and their versions) of this datastore, '
                 'repeatable (default: every datastore)')
        auth.add_cloud_arguments(parser)
        return parser

    def take_action(self, parsed_args):
        conn = auth.command_connection(
            parsed_args, admin_for='clean (Trove management API, flavors)')
        try:
            items = self._plan(conn, parsed_args.flavor_set,
                               parsed_args.datastore)
        except ds_registry.DatastoreError as exc:
            raise exceptions.CommandError(str(exc)) from exc
        self.failures = 0
        if not parsed_args.dry_run:
            self.failures = cleanup.execute(items)
        return self.headers, [tuple(_text(getattr(item, column))
                                    for column in self.columns)
                              for item in items]

    def run(self, parsed_args):
        self.failures = 0
        status = super().run(parsed_args)
        if self.failures:
            LOG.error('Failed to delete %d resource(s); see the failed rows',
                      self.failures)
            return 1
        return status

    @staticmethod
    def _plan(conn, flavor_set, datastores):
        """Every item, in the order they must be deleted."""
        image_items, our_images = cleanup.plan_images(conn, datastores)
        datastore_items = cleanup.plan_datastores(auth.trove_client(conn),
                                                  our_images)
        cleanup.link_images(image_items, datastore_items)
        flavor_items = []
        if flavor_set != NO_FLAVORS:
            flavor_items = cleanup.plan_flavors(conn, flavor_set)
        return datastore_items + image_items + flavor_items


def _text(value):
    # troveclient sometimes hands ids over as bytes.
    return value.decode() if isinstance(value, bytes) else value
