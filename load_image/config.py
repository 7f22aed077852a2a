"""oslo.config options of load-trove-image and activate-trove-image.

Every option can be set in a config file (``--config-file``, section
``[load_image]``); command line arguments override it.  list_opts() feeds
oslo-config-generator (namespace ``load_image``), which writes
etc/load-trove-image.conf.sample.
"""

from oslo_config import cfg

from load_image import datastores
from trovestack.common.errors import UserError

GROUP = 'load_image'

image_opts = [
    cfg.StrOpt('guest_os', default='debian',
               help='Operating system of the guest image, used in the image '
                    'name and stored as the os_distro property.'),
    cfg.StrOpt('guest_release', default='bookworm',
               help='Release of the guest operating system, used in the '
                    'image name and stored as the os_version property.'),
    cfg.StrOpt('disk_format', default='auto',
               choices=[('auto', 'detect the format from the content'),
                        ('qcow2', 'QEMU copy-on-write v2/v3'),
                        ('raw', 'plain disk image')],
               help='Disk format of the image file; auto detects it from '
                    'the content. A declared format must match the content.'),
    cfg.StrOpt('visibility', default='private',
               choices=[('public', 'every project sees the image'),
                        ('private', 'only the owning project'),
                        ('shared', 'the owner and projects it is shared '
                                   'with'),
                        ('community', 'every project, but unlisted')],
               help='Glance visibility of uploaded images.'),
    cfg.ListOpt('image_tags', default=[],
                help='Tags added to the image besides "trove" and the '
                     'datastore name; they are also the version\'s '
                     'image_tags in Trove.'),
    cfg.IntOpt('upload_retries', default=3, min=0,
               help='How many times a transient upload failure (5xx, '
                    'dropped connection, expired token) is retried.'),
    cfg.FloatOpt('retry_delay', default=2.0, min=0,
                 help='Seconds to wait before the first retry; the n-th '
                      'retry waits n times as long.'),
    cfg.IntOpt('active_timeout', default=600, min=1,
               help='Seconds an uploaded image may take to become active.'),
    cfg.BoolOpt('prune', default=False,
                help='Delete older images of the same name that no datastore '
                     'version uses any more, once the version points at the '
                     'new one.'),
]

datastore_opts = [
    cfg.ListOpt('known_managers', default=list(datastores.KNOWN_MANAGERS),
                help='Datastore managers the cloud\'s Trove can run; add '
                     'the keys of its datastore_registry_ext here.'),
]


def register_opts(conf):
    """Register the options on ``conf`` (group [load_image])."""
    conf.register_opts(image_opts + datastore_opts, group=GROUP)


def list_opts():
    """(group, options) pairs for oslo-config-generator."""
    return [(GROUP, image_opts + datastore_opts)]


def load(config_files=()):
    """A ConfigOpts with our options, read from ``config_files``."""
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
