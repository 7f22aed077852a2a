"""oslo.config options of load-trove-image and activate-trove-image.

Every option can be set in a config file (``--config-file``, section
``[load_image]``); command line arguments override it.  list_opts() feeds
oslo-config-generator (namespace ``load_image``), which writes
etc/load-trove-image.conf.sample.  oslo.config is imported only to read
config files (and for the generator): without them, :func:`load` gives the
defaults.
"""

import types
from collections.abc import Iterable
from typing import Any

from load_image import datastores
from trovestack.common.errors import UserError

GROUP = 'load_image'

# Each option's default; the options themselves are in _options().
DEFAULTS = {
    'guest_os': 'debian',
    'guest_release': 'bookworm',
    'disk_format': 'auto',
    'visibility': 'private',
    'image_tags': [],
    'upload_retries': 3,
    'retry_delay': 2.0,
    'active_timeout': 600,
    'prune': False,
    'known_managers': list(datastores.KNOWN_MANAGERS),
}


def _options() -> list[Any]:
    """The oslo.config options, all in group [load_image]."""
    from oslo_config import cfg

    return [
        cfg.StrOpt(
            'guest_os', default=DEFAULTS['guest_os'],
            help='Operating system of the guest image, used in the image '
                 'name and stored as the os_distro property.'),
        cfg.StrOpt(
            'guest_release', default=DEFAULTS['guest_release'],
            help='Release of the guest operating system, used in the '
                 'image name and stored as the os_version property.'),
        cfg.StrOpt(
            'disk_format', default=DEFAULTS['disk_format'],
            choices=[('auto', 'detect the format from the content'),
                     ('qcow2', 'QEMU copy-on-write v2/v3'),
                     ('raw', 'plain disk image')],
            help='Disk format of the image file; auto detects it from '
                 'the content. A declared format must match the content.'),
        cfg.StrOpt(
            'visibility', default=DEFAULTS['visibility'],
            choices=[('public', 'every project sees the image'),
                     ('private', 'only the owning project'),
                     ('shared', 'the owner and projects it is shared with'),
                     ('community', 'every project, but unlisted')],
            help='Glance visibility of uploaded images.'),
        cfg.ListOpt(
            'image_tags', default=DEFAULTS['image_tags'],
            help='Tags added to the image besides "trove" and the '
                 'datastore name; they are also the version\'s '
                 'image_tags in Trove.'),
        cfg.IntOpt(
            'upload_retries', default=DEFAULTS['upload_retries'], min=0,
            help='How many times a transient upload failure (5xx, '
                 'dropped connection, expired token) is retried.'),
        cfg.FloatOpt(
            'retry_delay', default=DEFAULTS['retry_delay'], min=0,
            help='Seconds to wait before the first retry; the n-th '
                 'retry waits n times as long.'),
        cfg.IntOpt(
            'active_timeout', default=DEFAULTS['active_timeout'], min=1,
            help='Seconds an uploaded image may take to become active.'),
        cfg.BoolOpt(
            'prune', default=DEFAULTS['prune'],
            help='Delete older images of the same name that no datastore '
                 'version uses any more, once the version points at the '
                 'new one.'),
        cfg.ListOpt(
            'known_managers', default=DEFAULTS['known_managers'],
            help='Datastore managers the cloud\'s Trove can run; add '
                 'the keys of its datastore_registry_ext here.'),
    ]


def register_opts(conf: Any) -> None:
    """Register the options on ``conf`` (group [load_image])."""
    conf.register_opts(_options(), group=GROUP)


def list_opts() -> list[tuple[str, list[Any]]]:
    """(group, options) pairs for oslo-config-generator."""
    return [(GROUP, _options())]


def load(config_files: Iterable[str] = ()) -> Any:
    """The [load_image] options read from ``config_files`` (attributes by
    option name); without files, their defaults."""
    if not config_files:
        return types.SimpleNamespace(**{
            name: list(value) if isinstance(value, list) else value
            for name, value in DEFAULTS.items()})
    from oslo_config import cfg

    conf = cfg.ConfigOpts()
    register_opts(conf)
    try:
        conf(args=[], project='load-trove-image',
             default_config_files=list(config_files),
             default_config_dirs=[], use_env=False)
        return conf[GROUP]
    except Exception as exc:  # noqa: BLE001 - oslo.config error types vary
        raise ConfigError(f'cannot load configuration: {exc}') from exc


class ConfigError(UserError):
    """A configuration file that can not be read or holds a bad value."""
