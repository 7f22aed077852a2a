"""cliff command ``build-datastore-image``."""

import logging
import sys

from cliff import show

from trovestack.cloud import registry
from trovestack.commands import cliapp
from trovestack.common import errors
from trovestack.images import datastore as datastore_images
from trovestack.images.datastore import backup
from trovestack.testenv import datastores as testenv_datastores

LOG = logging.getLogger(__name__)

COLUMNS = ('datastore', 'version', 'reference', 'path', 'sha256',
           'image_id', 'size', 'built', 'seconds', 'pushed', 'pushed_digest',
           'backup_strategy', 'trove')
HEADERS = ('Datastore', 'Version', 'Image', 'Archive', 'SHA256', 'Image ID',
           'Size', 'Built', 'Seconds', 'Pushed to', 'Pushed digest',
           'Backup strategy', 'Trove')

datastore_argument = cliapp.argument_type(
    testenv_datastores.parse_datastore_arg)


class BuildDatastoreImage(show.ShowOne):
    _description = ("Build the database container image Trove's guest "
                    'agent runs (a docker-archive named trovestack/'
                    '<datastore>:<version>) from Debian packages, without a '
                    'Docker daemon; skipped when its inputs are unchanged. '
                    'With --backup: the image its backups and restores run '
                    "in (trovestack/db-backup-<datastore>:<version>, Trove's "
                    'backup/ code and the datastore\'s backup tools)')

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument(
            'datastore', metavar='<datastore>:<version>',
            type=datastore_argument,
            help='Image to build, one of: '
                 + ', '.join(datastore_images.supported()))
        parser.add_argument(
            '--output-dir', metavar='<dir>',
            help='Directory of the archive (default: '
                 '$TROVESTACK_DATASTORE_IMAGE_CACHE or '
                 '~/.cache/trovestack/datastore-images)')
        parser.add_argument(
            '--force', action='store_true',
            help='Rebuild even when the inputs are unchanged')
        parser.add_argument(
            '--backup', action='store_true',
            help="Build the datastore's backup image instead, with the "
                 "backup/ code of the Trove the local cloud runs (see "
                 '--state-dir, --trove-tree)')
        source = parser.add_mutually_exclusive_group()
        source.add_argument(
            '--state-dir', metavar='<dir>',
            help='With --backup: the local cloud whose Trove (release or '
                 'tree) gives the backup code (default: the default '
                 'cloud; the installed release when there is none)')
        source.add_argument(
            '--trove-tree', metavar='<dir>',
            help='With --backup: take the backup code from this Trove '
                 'source tree')
        parser.add_argument(
            '--push', metavar='<registry host:port>',
            help='Also push the image to this registry (plain HTTP), as '
                 '<registry>/<image>:<version>')
        parser.add_argument(
            '--mirror', metavar='<url>',
            help="Debian mirror (default: the one this host's apt uses)")
        parser.add_argument(
            '--security-mirror', metavar='<url>',
            help="Debian security mirror (default: the one this host's apt "
                 'uses, if any)')
        return parser

    def _progress(self, message):
        if self.app.options.verbose_level >= 1:
            print(message, file=sys.stderr, flush=True)

    def take_action(self, parsed_args):
        name, version = parsed_args.datastore
        options = dict(output_dir=parsed_args.output_dir,
                       force=parsed_args.force, progress=self._progress,
                       mirror=parsed_args.mirror,
                       security_mirror=parsed_args.security_mirror)
        if parsed_args.backup:
            image = backup.build_backup(
                name, version, source=backup_source(parsed_args), **options)
        elif parsed_args.state_dir or parsed_args.trove_tree:
            raise errors.UserError('--state-dir and --trove-tree choose the '
                                   'code of a backup image: add --backup')
        else:
            image = datastore_images.build(name, version, **options)
        pushed = None
        if parsed_args.push:
            pushed = registry.push(image.path, parsed_args.push,
                                   image.repository, image.tag)
        values = {
            'datastore': image.datastore, 'version': image.version,
            'reference': image.reference, 'path': str(image.path),
            'sha256': image.sha256, 'image_id': image.image_id,
            'size': image.size, 'built': image.built,
            'seconds': round(image.seconds, 1),
            'pushed': pushed.reference if pushed else '',
            'pushed_digest': pushed.digest if pushed else '',
            'backup_strategy': getattr(image, 'strategy', ''),
            'trove': getattr(image, 'trove', ''),
        }
        return HEADERS, tuple(values[column] for column in COLUMNS)


def backup_source(parsed_args):
    """The Trove whose backup/ code goes into a backup image: the tree
    given, else the one the local cloud runs."""
    from trovestack.cloud import trove_source

    if parsed_args.trove_tree:
        return trove_source.of_tree(parsed_args.trove_tree)
    return trove_source.of_cloud(parsed_args.state_dir)
