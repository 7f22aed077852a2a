"""Load Trove guest images into Glance and register them with Trove.

The library entry points (``load-trove-image``, ``activate-trove-image`` and
``trovestack provision`` call them)::

    request = load_image.make_request('guest.qcow2', 'mysql', '8.4')
    image_file = load_image.read_image(request)  # checks, hashes; no cloud
    result = load_image.load(conn, request, image_file)   # -> LoadResult
    version = load_image.activate(conn, 'mysql', '8.4')   # -> VersionResult

Errors are UserError subclasses with a one-line message.  The modules
(images, datastores) are imported when used, so importing this package
stays cheap.
"""

import dataclasses
import pathlib
import warnings
from collections.abc import Callable
from collections.abc import Iterable
from typing import TYPE_CHECKING
from typing import Any

from trovestack.common import connection

if TYPE_CHECKING:
    from load_image import datastores
    from load_image import images
    from load_image import parameters

# python-troveclient imports eventlet only for time.sleep; eventlet then
# prints a deprecation banner that users of these tools can do nothing about.
warnings.filterwarnings('ignore', message=r'\s*Eventlet is deprecated')

# Every guest image gets this Glance tag (and the datastore's name).
GUEST_IMAGE_TAG = 'trove'
# What a guest image build (trovestack build-image) leaves next to
# IMAGE and this package reads: the build hash, stored in Glance, and the
# build record (the guest agent's provenance).
BUILD_HASH_SUFFIX = '.build-hash'
SIDECAR_SUFFIX = '.build.json'


@dataclasses.dataclass
class LoadRequest:
    """What to load, validated; make_request() fills the defaults."""

    image_file: str
    datastore: str
    version: str
    manager: str
    image_name: str
    guest_os: str
    guest_release: str
    disk_format: str = 'auto'
    visibility: str = 'private'
    extra_tags: list = dataclasses.field(default_factory=list)
    version_number: str | None = None
    packages: list = dataclasses.field(default_factory=list)
    default: bool = False
    config_params: str | None = None
    # parameters.TroveDatabase: load config_params with trove-manage there
    # (every parameter); None: through the management API.
    trove_database: 'parameters.TroveDatabase | None' = None
    prune: bool = False
    build_hash: str | None = None
    # guest_agent.provenance of the image's build (its .build.json):
    # {'source', 'version', 'digest' (local trees)...}; None: unknown
    agent: dict | None = None
    retries: int = 3
    retry_delay: float = 2.0
    active_timeout: int = 600

    @property
    def tags(self) -> list[str]:
        return [GUEST_IMAGE_TAG, self.datastore, *self.extra_tags]


@dataclasses.dataclass
class LoadResult:
    """The Glance image, the datastore version and what else was done."""

    image: 'images.ImageResult'
    version: 'datastores.VersionResult'
    pruned: list
    parameters: 'datastores.ParametersResult | None' = None  # if loaded


def check_names(datastore: str, version: str) -> None:
    """Raise DatastoreError unless both are usable names (no cloud)."""
    from load_image import datastores

    datastores.validate_name('datastore', datastore)
    datastores.validate_version(version)


def make_request(image_file: str, datastore: str, version: str, *,
                 conf: Any = None, version_number: str | None = None,
                 manager: str | None = None, packages: Iterable[str] = (),
                 image_name: str | None = None, guest_os: str | None = None,
                 guest_release: str | None = None,
                 disk_format: str | None = None, visibility: str | None = None,
                 image_tags: Iterable[str] | None = None,
                 default: bool = False, config_params: str | None = None,
                 prune: bool | None = None, build_hash: str | None = None,
                 trove_config: str | None = None,
                 trove_manage: str | None = None,
                 agent: dict[str, Any] | None = None) -> LoadRequest:
    """A validated LoadRequest; options left None come from ``conf`` (the
    [load_image] options, default: their defaults).  ``trove_config``
    (a trove.conf) and ``trove_manage``: load ``config_params`` with
    trove-manage into that Trove's database (parameters.choose()).
    ``agent``: the guest agent's provenance (default: from the image's
    build record, ``IMAGE.build.json``)."""
    from load_image import config
    from load_image import datastores
    from load_image import images

    if conf is None:
        conf = config.load()

    def pick(value: Any, name: str) -> Any:
        return getattr(conf, name) if value is None else value

    check_names(datastore, version)
    if version_number is not None:
        datastores.validate_version(version_number)
    try:
        manager = datastores.validate_manager(manager or datastore,
                                              conf.known_managers)
    except datastores.DatastoreError as exc:
        if manager is None:
            raise datastores.DatastoreError(
                f'{exc}; give --manager for datastore {datastore!r}'
            ) from exc
        raise
    if config_params and not pathlib.Path(config_params).is_file():
        raise datastores.DatastoreError(
            f'configuration parameters file {config_params} does not exist')
    trove_database = None
    if config_params and trove_config:
        from load_image import parameters

        trove_database = parameters.trove_database(trove_config,
                                                   trove_manage)
    # The builder's record says what the image is: a plugin's or a user's
    # guest OS settings describe what they would build, not a given file.
    record = _read_record(image_file)
    guest_os = record.get('guest_os') or pick(guest_os, 'guest_os')
    guest_release = record.get('guest_release') or pick(
        guest_release, 'guest_release')
    return LoadRequest(
        image_file=image_file, datastore=datastore, version=version,
        version_number=version_number, manager=manager,
        packages=list(packages),
        image_name=image_name or images.image_name(
            datastore, version, guest_os, guest_release),
        guest_os=guest_os, guest_release=guest_release,
        disk_format=pick(disk_format, 'disk_format'),
        visibility=pick(visibility, 'visibility'),
        extra_tags=list(pick(image_tags, 'image_tags') or []),
        default=default, config_params=config_params,
        trove_database=trove_database, prune=pick(prune, 'prune'),
        build_hash=build_hash or _read_build_hash(
            image_file + BUILD_HASH_SUFFIX),
        agent=agent if agent is not None else _agent_of(record),
        retries=conf.upload_retries, retry_delay=conf.retry_delay,
        active_timeout=conf.active_timeout)


def _read_build_hash(path: pathlib.Path | str) -> str | None:
    try:
        return pathlib.Path(path).read_text().strip() or None
    except OSError:
        return None


def _read_record(image_file: str) -> dict[str, Any]:
    """An image's build record (its .build.json), {} when there is none
    or it can not be read."""
    from trovestack.common import stamps

    record = stamps.read(image_file, SIDECAR_SUFFIX)
    return record if isinstance(record, dict) else {}


def _agent_of(record: dict[str, Any]) -> dict[str, Any] | None:
    """The guest agent's provenance in an image's build record."""
    agent = record.get('agent')
    return agent if isinstance(agent, dict) else None


def agent_properties(agent: dict[str, Any] | None) -> dict[str, str]:
    """The Glance properties naming an image's guest agent: where it comes
    from (``trove_agent_source``: ``release:26.0.0``,
    ``tree:<path>@<commit>[+dirty]``, ``tree:<path>``,
    ``git:<url>@<commit>``), its version and, for a local tree, the
    digest of its content (``trove_agent_digest``)."""
    properties = {}
    for key, name in (('source', 'trove_agent_source'),
                      ('version', 'trove_agent_version'),
                      ('digest', 'trove_agent_digest')):
        if (agent or {}).get(key):
            properties[name] = str(agent[key])  # type: ignore[index]  # agent has key
    return properties


def read_image(
        request: LoadRequest,
        progress: Callable[[int], None] | None = None) -> 'images.ImageFile':
    """The checked and hashed image file (images.ImageFile); no cloud."""
    from load_image import images

    return images.load_image_file(request.image_file, request.disk_format,
                                  progress=progress)


def load(conn: connection.Connection, request: LoadRequest,
         image_file: 'images.ImageFile', *,
         progress: Callable[[int], None] | None = None) -> LoadResult:
    """Upload (or reuse) the image, register the version, then the
    optional config parameters, default and pruning; a LoadResult."""
    from load_image import datastores
    from load_image import images
    from load_image import trove_api

    trove = trove_api.mgmt_client(conn)
    properties = {
        'hw_rng_model': 'virtio',
        'os_distro': request.guest_os,
        'os_version': request.guest_release,
        'trove_datastore': request.datastore,
        'trove_datastore_version': request.version,
    }
    if request.build_hash:
        properties['trove_build_hash'] = request.build_hash
    properties.update(agent_properties(request.agent))
    image = images.ensure_image(
        conn, image_file, name=request.image_name, tags=request.tags,
        properties=properties, visibility=request.visibility,
        retries=request.retries, retry_delay=request.retry_delay,
        timeout=request.active_timeout, progress=progress)
    version = datastores.register_version(
        trove, datastore=request.datastore, version=request.version,
        version_number=request.version_number, manager=request.manager,
        image_id=image.id, image_tags=request.extra_tags,
        packages=request.packages)
    parameters = None
    if request.config_params:
        from load_image import parameters as parameters_mod
        from trovestack.common import connection

        parameters = parameters_mod.load(
            lambda: connection.trove_client(conn), version,
            request.config_params, database=request.trove_database,
            mgmt=trove)
    if request.default:
        default = datastores.set_default_version(
            trove, request.datastore, request.version,
            version_number=version.version_number)
        version.default = default.default
        if version.action == 'unchanged':
            version.action = default.action
    pruned = []
    if request.prune:
        in_use = datastores.image_ids_in_use(trove)
        pruned = [image_id for image_id in images.other_images(
            conn, request.image_name, image.id) if image_id not in in_use]
        images.delete_images(conn, pruned)
    return LoadResult(image=image, version=version, pruned=pruned,
                      parameters=parameters)


def activate(conn: connection.Connection, datastore: str, version: str, *,
             version_number: str | None = None,
             exclusive: bool = False) -> 'datastores.VersionResult':
    """Make the version its datastore's default (and active); a
    datastores.VersionResult."""
    from load_image import datastores
    from load_image import trove_api

    check_names(datastore, version)
    return datastores.set_default_version(
        trove_api.mgmt_client(conn), datastore, version,
        version_number=version_number, exclusive=exclusive)
