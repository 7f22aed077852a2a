"""The devstack plugin's extra phase, as one library function.

:func:`extra` runs the chain ``trovestack provision`` runs, on the cloud
devstack made: datastore container images (when they come from this
project) -> one guest image build -> one Glance image -> every datastore
version registered with it -> defaults -> Trove's instance prerequisites
(:mod:`trovestack.trove.instance_prereqs`) -> Trove's configuration for
instances (:mod:`trovestack.trove.trove_config`).  Every step converges, so
a second run changes nothing.  ``devstack/lib/trove`` calls it through
``trovestack devstack-extra``; bash keeps only devstack's glue.

Defaults, one rule for every path (:func:`default_versions`): the first
version listed for each datastore becomes that datastore's default, and the
first datastore listed is Trove's default datastore.
"""

import dataclasses
import logging
import pathlib

import load_image
from trovestack import testenv
from trovestack.common import errors
from trovestack.common import ini
from trovestack.common import results
from trovestack.images.guest import builder
from trovestack.images.guest import guest_agent
from trovestack.orchestration import provision
from trovestack.trove import instance_prereqs
from trovestack.trove import instance_setup
from trovestack.trove import trove_config

LOG = logging.getLogger(__name__)

IMAGE_SOURCES = ('upstream', 'embedded', 'registry')


# The one rule for defaults, shared with ``trovestack provision``.
default_versions = provision.default_versions


def default_datastore(datastores):
    """Trove's default datastore: the first one listed."""
    return datastores[0][0]


@dataclasses.dataclass(frozen=True)
class ExtraPlan:
    """The plugin's settings the extra phase acts on."""

    datastores: tuple
    config_files: dict
    image: str | None = None
    image_dir: str | None = None
    cache_dir: str | None = None
    guest_os: str = 'ubuntu'
    guest_release: str = 'noble'
    # The guest image's login user: the build makes it, Trove's injected
    # files are given to it (trove_config.GUEST_USER).
    guest_user: str = trove_config.GUEST_USER
    mirror: str | None = None
    # The guest agent a build takes (builder.BuildRequest's agent_*):
    # 'local' and a Trove tree (the plugin's default: $TROVE_DIR), 'pip'
    # and a release (None: the builder's), 'git' and a repository URL in
    # agent_path with a branch or tag in agent_ref.
    agent_source: str = guest_agent.PIP
    agent_path: str | None = None
    agent_ref: str | None = None
    force_build: bool = False
    visibility: str = 'public'
    config_params_dir: str | None = None
    # Load them with this trove-manage and config_files' trove.conf (every
    # parameter); None: through the management API.
    trove_manage: str | None = None
    image_source: str = 'upstream'
    registry: str | None = None
    registry_dir: str | None = None
    image_overrides: dict = dataclasses.field(default_factory=dict)
    insecure_registries: tuple = ()
    wanted: instance_prereqs.Wanted = instance_prereqs.Wanted()
    # OVS bridge the management port of this host is plugged into (with
    # wanted.host_port); guests then reach RabbitMQ at its address.
    host_bridge: str = 'br-int'
    network_isolation: bool = False
    volume_support: bool = True
    volume_type: str | None = None
    timeouts: trove_config.Timeouts = trove_config.TCG_TIMEOUTS
    # {option: value} of trove_config.LIMITS set by the user
    limits: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        if not self.datastores:
            raise errors.UserError('no datastore to provision')
        try:
            trove_config.guest_user(self.guest_user)
            trove_config.limits_config(self.limits)
        except ValueError as exc:
            raise errors.UserError(str(exc)) from None
        if self.image_source not in IMAGE_SOURCES:
            raise errors.UserError(
                f'unknown datastore image source {self.image_source!r} '
                f'(valid: {", ".join(IMAGE_SOURCES)})')
        if not self.image:
            self._check_agent()

    def _check_agent(self):
        if self.agent_source not in guest_agent.SOURCES:
            raise errors.UserError(
                f'unknown guest agent source {self.agent_source!r} '
                f'(valid: {", ".join(guest_agent.SOURCES)})')
        if self.agent_source == guest_agent.LOCAL and not self.agent_path:
            raise errors.UserError('guest agent source local needs the path '
                                   'of a Trove source tree')
        if self.agent_source == guest_agent.GIT and not self.agent_path:
            raise errors.UserError('guest agent source git needs the URL of '
                                   'a repository')

    def docker_images(self):
        """{datastore: repository} Trove's guest agent runs."""
        try:
            return trove_config.docker_images(
                [name for name, _ in self.datastores],
                source=self.image_source, registry=self.registry,
                overrides=self.image_overrides)
        except ValueError as exc:
            raise errors.UserError(str(exc)) from None

    def backup_docker_images(self):
        """{datastore: backup image repository}: this project's, in the
        registry, when the datastore images come from there; else none
        set (Trove's own default: its images on quay.io)."""
        if self.image_source != 'registry':
            return {}
        return trove_config.backup_docker_images(
            [name for name, _ in self.datastores], source='registry',
            registry=self.registry)

    def backup_source(self):
        """The Trove whose backup/ code goes into backup images: the tree
        the guest agent comes from (the plugin's $TROVE_DIR) when it has
        that code, else the release installed beside trovestack."""
        from trovestack.cloud import trove_source

        if self.agent_source == guest_agent.LOCAL and self.agent_path and \
                pathlib.Path(self.agent_path, 'backup', 'main.py').is_file():
            return trove_source.of_tree(self.agent_path)
        return trove_source.release()

    def offline_datastores(self):
        """The (datastore, version) images this project builds itself: for
        a registry, or to embed in a guest image it builds (a given image
        has its own embedded already)."""
        if self.image_source == 'upstream' or (
                self.image_source == 'embedded' and self.image):
            return ()
        return tuple(dict.fromkeys(self.datastores))

    def image_name(self):
        """One Glance image per distinct content: container-mode images
        differ only by the datastore images embedded in them."""
        name = f'trove-guest-{self.guest_os}-{self.guest_release}'
        embedded = self.offline_datastores() \
            if self.image_source == 'embedded' else ()
        if embedded:
            name += '-' + '-'.join(f'{ds}{ver}' for ds, ver in embedded)
        if not self.image and self.guest_user != trove_config.GUEST_USER:
            name += f'-{self.guest_user}'  # a build with another user
        return name


def _datastore_images(plan):
    """Build this project's datastore images; push them to the registry
    when that is the source.  ([Row], [DatastoreImage])."""
    offline = plan.offline_datastores()
    if not offline:
        return [], []
    from trovestack.cloud import registry
    from trovestack.images import datastore as datastore_images

    rows, built = [], []
    for name, version in offline:
        image = datastore_images.build(name, version)
        built.append(image)
        rows.append(results.Row(
            'datastore-image', f'{name}:{version}',
            results.CREATED if image.built else results.UNCHANGED,
            str(image.path)))
    if plan.image_source == 'registry':
        host, _, port = plan.registry.rpartition(':')
        registry.start(plan.registry_dir, host, int(port))
        for image in built:
            registry.push(image.path, plan.registry, image.repository,
                          image.tag)
            rows.append(results.Row('registry-image', registry.image_reference(
                plan.registry, image.repository, image.tag), results.OK,
                'pushed'))
        # Backups and restores run in images of this project too, from
        # the same registry, with the backup/ code of the Trove tested.
        rows += datastore_images.backup.build_and_push(
            offline, plan.registry, source=plan.backup_source())
    return rows, built


def _guest_image(plan, embedded):
    """The given image, or one build for every datastore; (Row, path)."""
    if plan.image:
        path = pathlib.Path(plan.image)
        if not path.is_file():
            raise errors.UserError(f'guest image {plan.image} does not exist')
        return results.Row('guest-image', str(path), results.SKIPPED,
                           'given'), path
    name, version = plan.datastores[0]
    request = builder.BuildRequest(
        datastore=name, datastore_version=version, guest_os=plan.guest_os,
        guest_release=plan.guest_release, guest_user=plan.guest_user,
        output_dir=plan.image_dir,
        output=(str(pathlib.Path(plan.image_dir) / f'{plan.image_name()}'
                    '.qcow2') if plan.image_dir else None),
        mirror=plan.mirror, force=plan.force_build,
        cache_dir=plan.cache_dir, agent_source=plan.agent_source,
        agent_path=plan.agent_path, agent_ref=plan.agent_ref)
    if embedded:
        _embed(request, embedded)
    result = builder.build_image(request, progress=LOG.info)
    return results.Row('guest-image', result.path,
                       results.UNCHANGED if result.skipped
                       else results.CREATED, 'trove-image-builder'), \
        pathlib.Path(result.path)


def _embed(request, images):
    """Ask the builder to bake the datastore images into the guest image."""
    fields = {f.name for f in dataclasses.fields(request)}
    field = next((name for name in ('embed_datastore_images',
                                    'embed_datastore_image')
                  if name in fields), None)
    if field is None:
        raise errors.UserError(
            'this trove-image-builder cannot embed datastore images; use '
            'TROVE_DATASTORE_IMAGE_SOURCE=registry or upstream')
    setattr(request, field, tuple(f'{i.datastore}:{i.version}'
                                  for i in images))


def _register(conn, plan, image_path):
    """One Glance image, every datastore version on it, defaults."""
    defaults = default_versions(plan.datastores)
    rows, image_file = [], None
    for name, version in dict.fromkeys(plan.datastores):
        request = load_image.make_request(
            str(image_path), name, version, image_name=plan.image_name(),
            guest_os=plan.guest_os, guest_release=plan.guest_release,
            visibility=plan.visibility,
            default=(name, version) in defaults,
            config_params=_config_params(plan, name),
            trove_config=plan.config_files[trove_config.TROVE_CONF]
            if plan.trove_manage else None, trove_manage=plan.trove_manage)
        first = image_file is None
        if first:
            image_file = load_image.read_image(request)
        loaded = load_image.load(conn, request, image_file)
        if first:
            rows.append(results.Row(
                'glance-image', loaded.image.name,
                results.CREATED if loaded.image.action == 'uploaded'
                else results.UNCHANGED, loaded.image.id))
        rows.append(results.Row(
            'datastore-version', f'{name}:{version}', loaded.version.action,
            'default' if (name, version) in defaults else ''))
        if loaded.parameters is not None:
            rows.append(_parameters_row(f'{name}:{version}',
                                        loaded.parameters))
    return rows


def _parameters_row(name, loaded):
    """What loading a version's configuration parameters did."""
    action = results.CREATED if loaded.created else \
        results.UPDATED if loaded.updated else results.UNCHANGED
    return results.Row('config-parameters', name, action, loaded.summary())


def _config_params(plan, datastore):
    """Trove's validation-rules.json of the datastore, if loading them."""
    if not plan.config_params_dir:
        return None
    path = pathlib.Path(plan.config_params_dir, datastore,
                        'validation-rules.json')
    return str(path) if path.is_file() else None


def _host_messaging(plan, prepared):
    """Plug this host's management port in; the guests' messaging URL
    through it, or through the gateway address this host holds on the
    management network.  ([Row], url or None)."""
    rows, address = [], plan.wanted.gateway or None
    if prepared.port is not None:
        rows = instance_prereqs.plug_host_port(
            prepared.port, plan.wanted.cidr, bridge=plan.host_bridge)
        address = prepared.port.fixed_ips[0]['ip_address']
    if address is None:
        return rows, None
    server = ini.IniFile.load(plan.config_files[trove_config.TROVE_CONF])
    url = server.get('DEFAULT', 'transport_url')
    if not url or url.startswith('fake:'):
        return rows, None
    return rows, instance_prereqs.guest_transport_url(url, address)


def instance_settings(plan, prepared, guest_transport_url=None):
    """:class:`trove_config.InstanceSettings` from the plan and what
    :func:`instance_prereqs.converge` found or made."""
    insecure = list(plan.insecure_registries)
    if plan.image_source == 'registry' and plan.registry not in insecure:
        insecure.insert(0, plan.registry)
    settings = instance_setup.instance_settings(
        prepared, docker_images=plan.docker_images(),
        backup_docker_images=plan.backup_docker_images(),
        insecure_registries=insecure,
        network_isolation=plan.network_isolation,
        volume_support=plan.volume_support, volume_type=plan.volume_type,
        timeouts=plan.timeouts, guest_transport_url=guest_transport_url)
    return dataclasses.replace(settings, guest_user=plan.guest_user)


def _volume_type(conn, plan):
    """The volume type Trove will ask Cinder for exists; [Row]."""
    if not (plan.volume_support and plan.volume_type):
        return []
    if not testenv.has_service(conn, 'block-storage'):
        return [results.Row('volume-type', plan.volume_type,
                            results.SKIPPED,
                            'no block-storage endpoint in the catalog')]
    if conn.block_storage.find_type(plan.volume_type) is None:
        known = sorted(t.name for t in conn.block_storage.types())
        raise errors.UserError(
            f'Cinder has no volume type {plan.volume_type!r} (known: '
            f'{", ".join(known) or "none"})')
    return [results.Row('volume-type', plan.volume_type, results.OK,
                        'cinder')]


def extra(conn, plan):
    """The whole extra phase; [Row] of everything looked at."""
    plan.docker_images()  # a bad image setting fails before any work
    type_rows = _volume_type(conn, plan)
    rows, embedded = _datastore_images(plan)
    rows = type_rows + rows
    image_row, image_path = _guest_image(
        plan, embedded if plan.image_source == 'embedded' else ())
    rows.append(image_row)
    rows += _register(conn, plan, image_path)
    prepared = instance_prereqs.converge(conn, plan.wanted)
    rows += prepared.rows
    host_rows, guest_url = _host_messaging(plan, prepared)
    rows += host_rows
    rows += instance_setup.apply(
        instance_settings(plan, prepared, guest_url), plan.config_files,
        default_datastore=default_datastore(plan.datastores),
        extra=trove_config.limits_config(plan.limits))
    return rows
