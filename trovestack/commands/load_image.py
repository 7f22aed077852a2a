"""cliff commands: LoadImage (load-trove-image) and ActivateImage."""

import argparse
import logging
import os
import pathlib
import sys

from cliff import show
from osc_lib import exceptions

from load_image import auth
from load_image import config
from load_image import datastores
from load_image import images
from trovestack.imagebuild.hashing import BUILD_HASH_SUFFIX

LOG = logging.getLogger(__name__)

# Libraries that log, as warnings, what our one-line errors already say
# (format inspector safety checks, keystoneauth version discovery); they
# speak again with --debug or -vv.
_CHATTY_LOGGERS = ('keystoneauth', 'openstack', 'stevedore', 'urllib3',
                   'oslo_utils.imageutils.format_inspector')


def _comma_list(text):
    return [item.strip() for item in text.split(',') if item.strip()]


def _add_config_file_argument(parser):
    parser.add_argument(
        '--config-file', metavar='<file>', action='append', default=[],
        help='oslo.config file with a [load_image] section (repeatable); '
             'command line options override it')


class _CloudCommand(show.ShowOne):
    """Shared plumbing: config file, one cloud session, admin check."""

    def _config(self, parsed_args):
        try:
            return config.load(parsed_args.config_file)
        except Exception as exc:  # noqa: BLE001 - oslo.config error types vary
            raise exceptions.CommandError(
                f'cannot load configuration: {exc}') from exc

    def _admin_clients(self, parsed_args):
        conn = auth.command_connection(
            parsed_args, admin_for='managing Trove datastores')
        return conn, auth.trove_client(conn)

    def _quiet(self):
        return getattr(self.app.options, 'verbose_level', 1) == 0

    def _debug(self):
        options = self.app.options
        return bool(getattr(options, 'debug', False)) or \
            getattr(options, 'verbose_level', 1) >= 2

    def _quiet_libraries(self):
        if not self._debug():
            for name in _CHATTY_LOGGERS:
                logging.getLogger(name).setLevel(logging.ERROR)


class LoadImage(_CloudCommand):
    _description = ('Upload a Trove guest image to Glance (unless the same '
                    'content is there already) and register it as a '
                    'datastore version')

    columns = ('image_id', 'image_name', 'image_action', 'bytes_uploaded',
               'datastore', 'datastore_id', 'version', 'version_id',
               'version_action', 'default', 'images_pruned',
               'config_parameters')

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
            help='Glance visibility of a new image (default: private)')
        parser.add_argument(
            '--default', action='store_true',
            help='Also make this version the default of the datastore')
        parser.add_argument(
            '--config-params', metavar='<validation-rules.json>',
            help='Load these configuration parameters into the version')
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
        _add_config_file_argument(parser)
        auth.add_cloud_arguments(parser)
        return parser

    def take_action(self, parsed_args):
        self._quiet_libraries()
        options = self._options(parsed_args)
        image_file = self._image_file(parsed_args.image_file, options)
        conn, trove = self._admin_clients(parsed_args)
        try:
            return self._load(conn, trove, image_file, options)
        except (images.ImageUploadError, datastores.DatastoreError) as exc:
            raise exceptions.CommandError(str(exc)) from exc
        except auth.CloudError as exc:
            raise exceptions.CommandError(str(exc)) from exc
        except Exception as exc:
            if self._debug():
                raise
            raise exceptions.CommandError(
                auth.describe_error(exc, parsed_args.os_cloud)) from exc

    def _options(self, parsed_args):
        """Command line values over config file values, all validated."""
        conf = self._config(parsed_args)

        def pick(name):
            value = getattr(parsed_args, name)
            return getattr(conf, name) if value is None else value

        try:
            datastore = datastores.validate_name(
                'datastore', parsed_args.datastore)
            version = datastores.validate_version(parsed_args.version)
            number = parsed_args.version_number
            if number is not None:
                datastores.validate_version(number)
            manager = datastores.validate_manager(
                parsed_args.manager or datastore, conf.known_managers)
        except datastores.DatastoreError as exc:
            if parsed_args.manager is None and 'manager' in str(exc):
                raise exceptions.CommandError(
                    f'{exc}; give --manager for datastore '
                    f'{parsed_args.datastore!r}') from exc
            raise exceptions.CommandError(str(exc)) from exc
        if parsed_args.config_params and \
                not pathlib.Path(parsed_args.config_params).is_file():
            raise exceptions.CommandError(
                f'configuration parameters file {parsed_args.config_params} '
                'does not exist')
        guest_os, release = pick('guest_os'), pick('guest_release')
        extra_tags = pick('image_tags') or []
        return argparse.Namespace(
            datastore=datastore, version=version, version_number=number,
            manager=manager, packages=parsed_args.packages,
            image_name=parsed_args.image_name or images.image_name(
                datastore, version, guest_os, release),
            guest_os=guest_os, guest_release=release,
            disk_format=pick('disk_format'), visibility=pick('visibility'),
            tags=['trove', datastore, *extra_tags], extra_tags=extra_tags,
            default=parsed_args.default,
            config_params=parsed_args.config_params,
            prune=pick('prune'), build_hash=self._build_hash(parsed_args),
            retries=conf.upload_retries, retry_delay=conf.retry_delay,
            active_timeout=conf.active_timeout)

    @staticmethod
    def _build_hash(parsed_args):
        if parsed_args.build_hash:
            return parsed_args.build_hash
        sidecar = pathlib.Path(parsed_args.image_file + BUILD_HASH_SUFFIX)
        try:
            return sidecar.read_text().strip() or None
        except OSError:
            return None

    def _image_file(self, path, options):
        try:
            size = os.path.getsize(path)
        except OSError:
            size = None  # inspect_file() explains the problem
        with _progress_bar('hashing', self._quiet(), total=size) as progress:
            try:
                return images.load_image_file(
                    path, options.disk_format, progress=progress)
            except images.ImageFileError as exc:
                raise exceptions.CommandError(str(exc)) from exc

    def _load(self, conn, trove, image_file, options):
        properties = {
            'hw_rng_model': 'virtio',
            'os_distro': options.guest_os,
            'os_version': options.guest_release,
            'trove_datastore': options.datastore,
            'trove_datastore_version': options.version,
        }
        if options.build_hash:
            properties['trove_build_hash'] = options.build_hash
        with _progress_bar('uploading', self._quiet(),
                           total=image_file.size) as progress:
            image = images.ensure_image(
                conn, image_file, name=options.image_name, tags=options.tags,
                properties=properties, visibility=options.visibility,
                retries=options.retries, retry_delay=options.retry_delay,
                timeout=options.active_timeout, progress=progress)
        version = datastores.register_version(
            trove, datastore=options.datastore, version=options.version,
            version_number=options.version_number, manager=options.manager,
            image_id=image.id, image_tags=options.extra_tags,
            packages=options.packages)
        parameters = ''
        if options.config_params:
            loaded = datastores.load_config_parameters(
                trove, version.version_id, options.config_params)
            parameters = (f'created {len(loaded.created)}, updated '
                          f'{len(loaded.updated)}, unchanged '
                          f'{len(loaded.unchanged)}, skipped '
                          f'{len(loaded.skipped)}')
        if options.default:
            default = datastores.set_default_version(
                trove, options.datastore, options.version,
                version_number=version.version_number)
            version.default = default.default
            if version.action == 'unchanged':
                version.action = default.action
        pruned = []
        if options.prune:
            in_use = datastores.image_ids_in_use(trove)
            pruned = [image_id for image_id in images.other_images(
                conn, options.image_name, image.id) if image_id not in in_use]
            images.delete_images(conn, pruned)
        data = (image.id, image.name, image.action, image.bytes_uploaded,
                version.datastore, version.datastore_id, version.version,
                version.version_id, version.action, version.default,
                ','.join(pruned), parameters)
        return self.columns, data


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
        _add_config_file_argument(parser)
        auth.add_cloud_arguments(parser)
        return parser

    def take_action(self, parsed_args):
        self._quiet_libraries()
        try:
            datastores.validate_name('datastore', parsed_args.datastore)
            datastores.validate_version(parsed_args.version)
        except datastores.DatastoreError as exc:
            raise exceptions.CommandError(str(exc)) from exc
        self._config(parsed_args)
        _, trove = self._admin_clients(parsed_args)
        try:
            result = datastores.set_default_version(
                trove, parsed_args.datastore, parsed_args.version,
                version_number=parsed_args.version_number,
                exclusive=parsed_args.exclusive)
        except datastores.DatastoreError as exc:
            raise exceptions.CommandError(str(exc)) from exc
        data = (result.datastore, result.datastore_id, result.version,
                result.version_number, result.version_id, result.action,
                result.default, result.active)
        return self.columns, data


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
