"""cliff commands: LoadImage (load-trove-image) and ActivateImage."""

import dataclasses
import logging
import os
import sys

from cliff import show

import load_image
from load_image import BUILD_HASH_SUFFIX
from load_image import config
from trovestack.commands import cliapp
from trovestack.common import connection
from trovestack.common.errors import UserError

LOG = logging.getLogger(__name__)

ADMIN_PURPOSE = 'managing Trove datastores'

def _comma_list(text):
    return [item.strip() for item in text.split(',') if item.strip()]


class _CloudCommand(show.ShowOne):
    """Shared plumbing: how much to say."""

    def _quiet(self):
        return getattr(self.app.options, 'verbose_level', 1) == 0

    def _debug(self):
        options = self.app.options
        return bool(getattr(options, 'debug', False)) or \
            getattr(options, 'verbose_level', 1) >= 2


class LoadImage(_CloudCommand):
    _description = ('Upload a Trove guest image to Glance (unless the same '
                    'content is there already) and register it as a '
                    'datastore version')

    columns = ('image_id', 'image_name', 'image_action', 'bytes_uploaded',
               'datastore', 'datastore_id', 'version', 'version_id',
               'version_action', 'default', 'images_pruned',
               'config_parameters', 'config_parameters_via',
               'config_parameters_not_loaded')

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument(
            'image_file', metavar='<image-file>',
            help='qcow2 or raw guest image built by trove-image-builder')
        parser.add_argument(
            '--datastore', metavar='<datastore>', required=True,
            help='Datastore name, e.g. mysql (created if missing)')
        parser.add_argument(
            '--version', '--datastore-version', dest='version',
            metavar='<version>', required=True,
            help='Datastore version name, e.g. 8.4')
        parser.add_argument(
            '--version-number', metavar='<number>',
            help='Trove version number (default: the version name)')
        parser.add_argument(
            '--manager', metavar='<manager>',
            help='Guest datastore manager (default: the datastore name, '
                 'when it is a known manager)')
        parser.add_argument(
            '--packages', metavar='<p1,p2>', type=_comma_list, default=[],
            help='Packages recorded on the version (default: none)')
        parser.add_argument(
            '--image-name', metavar='<name>',
            help='Glance image name (default: '
                 'trove-guest-<os>-<release>-<datastore>-<version>)')
        parser.add_argument(
            '--guest-os', metavar='<os>',
            help='Guest operating system (default: debian)')
        parser.add_argument(
            '--guest-release', metavar='<release>',
            help='Guest operating system release (default: bookworm)')
        parser.add_argument(
            '--disk-format', choices=('auto', 'qcow2', 'raw'),
            help='Disk format; a declared format must match the content '
                 '(default: auto)')
        parser.add_argument(
            '--image-tags', metavar='<t1,t2>', type=_comma_list,
            help='Extra Glance tags besides "trove" and the datastore, also '
                 'stored as the version\'s image_tags (default: none)')
        parser.add_argument(
            '--visibility',
            choices=('public', 'private', 'shared', 'community'),
            help='Glance visibility of a new image; a reused one seen less '
                 'widely is widened to it (default: private)')
        parser.add_argument(
            '--default', action='store_true',
            help='Also make this version the default of the datastore')
        parser.add_argument(
            '--config-params', metavar='<validation-rules.json>',
            help='Load these configuration parameters into the version')
        through = parser.add_mutually_exclusive_group()
        through.add_argument(
            '--trove-config', metavar='<trove.conf>',
            help="Trove's server configuration: load every configuration "
                 "parameter with trove-manage into the database it names "
                 "(default: the local cloud's, when the cloud is "
                 'trovestack\'s local cloud; else through the API, which '
                 'takes only strings and bounded integers)')
        through.add_argument(
            '--parameters-through-api', dest='api_only',
            action='store_true',
            help='Load configuration parameters through the management API '
                 'even on the local cloud')
        parser.add_argument(
            '--trove-manage', metavar='<command>',
            help='trove-manage to run with --trove-config (default: the one '
                 'beside this Python, else on PATH)')
        prune = parser.add_mutually_exclusive_group()
        prune.add_argument(
            '--prune', dest='prune', action='store_true', default=None,
            help='Delete older images of the same name that no datastore '
                 'version uses any more')
        prune.add_argument(
            '--keep-old', dest='prune', action='store_false',
            help='Keep older images of the same name (default)')
        parser.add_argument(
            '--build-hash', metavar='<hash>',
            help='Build hash stored as the trove_build_hash property '
                 f'(default: the <image-file>{BUILD_HASH_SUFFIX} file, '
                 'if present)')
        parser.add_argument(
            '--config-file', metavar='<file>', action='append', default=[],
            help='oslo.config file with a [load_image] section (repeatable); '
                 'command line options override it')
        connection.add_cloud_arguments(parser)
        return parser

    def take_action(self, parsed_args):
        request = cliapp.from_options(
            load_image.make_request, parsed_args,
            conf=config.load(parsed_args.config_file))
        image_file = self._read_image(request)
        conn = connection.command_connection(
            parsed_args, admin_for=ADMIN_PURPOSE)
        if request.config_params and request.trove_database is None and \
                not parsed_args.api_only:
            from load_image import parameters

            request = dataclasses.replace(
                request, trove_database=parameters.choose(
                    conn, trove_manage=parsed_args.trove_manage))
        try:
            with _progress_bar('uploading', self._quiet(),
                               total=image_file.size) as progress:
                result = load_image.load(conn, request, image_file,
                                         progress=progress)
        except UserError:
            raise
        except Exception as exc:
            if self._debug():
                raise
            raise connection.CloudError(connection.describe_error(
                exc, parsed_args.os_cloud)) from exc
        return self.columns, load_result_row(result)

    def _read_image(self, request):
        try:
            size = os.path.getsize(request.image_file)
        except OSError:
            size = None  # read_image() explains the problem
        with _progress_bar('hashing', self._quiet(), total=size) as progress:
            return load_image.read_image(request, progress=progress)


def load_result_row(result):
    """The LoadImage columns' values of a load_image.LoadResult."""
    image, version = result.image, result.version
    parameters, via, not_loaded = '', '', ''
    if result.parameters is not None:
        parameters = result.parameters.counts()
        via = result.parameters.via
        not_loaded = ','.join(result.parameters.skipped)
    return (image.id, image.name, image.action, image.bytes_uploaded,
            version.datastore, version.datastore_id, version.version,
            version.version_id, version.action, version.default,
            ','.join(result.pruned), parameters, via, not_loaded)


class ActivateImage(_CloudCommand):
    _description = ('Make a datastore version the default of its datastore '
                    '(and mark it active)')

    columns = ('datastore', 'datastore_id', 'version', 'version_number',
               'version_id', 'action', 'default', 'active')

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument(
            'datastore', metavar='<datastore>', help='Datastore name')
        parser.add_argument(
            'version', metavar='<version>', help='Datastore version name')
        parser.add_argument(
            '--version-number', metavar='<number>',
            help='Version number, needed only when several versions share '
                 'the name (default: any)')
        parser.add_argument(
            '--exclusive', action='store_true',
            help='Also mark every other version of the datastore inactive')
        connection.add_cloud_arguments(parser)
        return parser

    def take_action(self, parsed_args):
        load_image.check_names(parsed_args.datastore, parsed_args.version)
        conn = connection.command_connection(
            parsed_args, admin_for=ADMIN_PURPOSE)
        result = load_image.activate(
            conn, parsed_args.datastore, parsed_args.version,
            version_number=parsed_args.version_number,
            exclusive=parsed_args.exclusive)
        return self.columns, (
            result.datastore, result.datastore_id, result.version,
            result.version_number, result.version_id, result.action,
            result.default, result.active)


class _progress_bar:
    """Context manager yielding progress(done) for tqdm, or None if quiet."""

    def __init__(self, description, quiet, total=None):
        self._description = description
        self._total = total
        self._enabled = not quiet and sys.stderr.isatty()
        self._bar = None

    def __enter__(self):
        if not self._enabled:
            return None
        return self._update

    def _update(self, done):
        if self._bar is None:
            import tqdm

            self._bar = tqdm.tqdm(
                desc=self._description, total=self._total, unit='B',
                unit_scale=True, unit_divisor=1024, file=sys.stderr,
                leave=False)
        self._bar.update(done - self._bar.n)

    def __exit__(self, *exc_info):
        if self._bar is not None:
            self._bar.close()
        return False
