"""cliff command ``build-datastore-image``."""

import logging
import sys

from cliff import show

from trovestack import cliapp
from trovestack import datastore_images
from trovestack import registry
from trovestack.testenv import datastores as testenv_datastores

LOG = logging.getLogger(__name__)

COLUMNS = ('datastore', 'version', 'reference', 'path', 'sha256',
           'image_id', 'size', 'built', 'seconds', 'pushed', 'pushed_digest')
HEADERS = ('Datastore', 'Version', 'Image', 'Archive', 'SHA256', 'Image ID',
           'Size', 'Built', 'Seconds', 'Pushed to', 'Pushed digest')

datastore_argument = cliapp.argument_type(
    testenv_datastores.parse_datastore_arg)


class BuildDatastoreImage(show.ShowOne):
    _description = ("Build the database container image Trove's guest "
                    'agent runs (a docker-archive named trovestack/'
                    '<datastore>:<version>) from Debian packages, without a '
                    'Docker daemon; skipped when its inputs are unchanged')

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
            '--push', metavar='<registry host:port>',
            help='Also push the image to this registry (plain HTTP), as '
                 '<registry>/trovestack/<datastore>:<version>')
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
        image = datastore_images.build(
            name, version, output_dir=parsed_args.output_dir,
            force=parsed_args.force, progress=self._progress,
            mirror=parsed_args.mirror,
            security_mirror=parsed_args.security_mirror)
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
        }
        return HEADERS, tuple(values[column] for column in COLUMNS)
