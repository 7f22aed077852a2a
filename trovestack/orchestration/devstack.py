"""The devstack plugin's extra phase: a profile of the orchestration.

:func:`plan_steps` lists the steps of
:mod:`~trovestack.orchestration.steps` the phase runs on the cloud devstack
made, the same step functions ``trovestack provision`` runs on the local
cloud: the registry (when images go to one the plugin runs) -> datastore
container images (when they come from this project) -> one guest image
build -> one Glance image, named after the image file -> every datastore
version registered with it, its configuration parameters from the Trove
tree that runs ($TROVE_DIR) ->
defaults -> backup images -> Trove's instance prerequisites
(:mod:`trovestack.trove.instance_prereqs`) -> Trove's configuration for
instances (:mod:`trovestack.trove.trove_config`).  Its own steps: Cinder's
volume type checked, this host's management port plugged in.  Every step
converges, so a second run changes nothing.  ``devstack/lib/trove`` calls
:func:`extra` through ``trovestack devstack-extra``; bash keeps only
devstack's glue.

Defaults, one rule for every path (:func:`default_versions`): the first
version listed for each datastore becomes that datastore's default, and the
first datastore listed is Trove's default datastore.
"""

import dataclasses
import logging
import pathlib

from trovestack import testenv
from trovestack.common import errors
from trovestack.common import ini
from trovestack.common import results
from trovestack.images.guest import builder
from trovestack.images.guest import guest_agent
from trovestack.orchestration import provision
from trovestack.orchestration import steps
from trovestack.trove import instance_prereqs
from trovestack.trove import instance_setup
from trovestack.trove import trove_config

LOG = logging.getLogger(__name__)

IMAGE_SOURCES = ('upstream', 'embedded', 'registry')
# Where guests get backup images: Trove's on quay.io, or this project's in
# the registry (Trove's agent looks each one up in a registry, so there is
# no embedded source: trove_config.backup_docker_images).
BACKUP_IMAGE_SOURCES = ('upstream', 'registry')


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
    # The Trove tree that runs (the plugin's $TROVE_DIR): each version's
    # configuration parameters come from its validation rules; None: not
    # loaded.
    config_params_tree: str | None = None
    # Load them with this trove-manage and config_files' trove.conf (every
    # parameter); None: through the management API.
    trove_manage: str | None = None
    image_source: str = 'upstream'
    # '' follows image_source: registry with the registry source, else
    # upstream.
    backup_image_source: str = ''
    # The registry's host:port as guests reach it; the plugin runs it in
    # registry_dir unless registry_push names the address this host
    # pushes to (an existing registry, reached from here another way).
    registry: str | None = None
    registry_dir: str | None = None
    registry_push: str | None = None
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
        if self.backup_image_source not in ('', *BACKUP_IMAGE_SOURCES):
            raise errors.UserError(
                f'unknown backup image source {self.backup_image_source!r} '
                f'(valid: {", ".join(BACKUP_IMAGE_SOURCES)})')
        if self.uses_registry() and not self.registry:
            which = 'image source' if self.image_source == 'registry' \
                else 'backup image source'
            raise errors.UserError(
                f'{which} "registry" needs a registry address (host:port)')
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

    def backups_from_registry(self):
        """True when guests pull backup images from the registry."""
        source = self.backup_image_source or (
            'registry' if self.image_source == 'registry' else 'upstream')
        return source == 'registry'

    def uses_registry(self):
        """True when datastore or backup images go to the registry."""
        return self.image_source == 'registry' or self.backups_from_registry()

    def registry_addresses(self):
        """(address this host pushes to, address guests pull from)."""
        return self.registry_push or self.registry, self.registry

    def docker_images(self):
        """{datastore: repository} Trove's guest agent runs."""
        try:
            return trove_config.docker_images(
                [name for name, _ in self.datastores],
                source=self.image_source, registry=self.registry,
                overrides=self.image_overrides)
        except ValueError as exc:
            raise errors.UserError(str(exc)) from None

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


def _registry(plan):
    """Start the plugin's own registry (none when the registry is an
    existing one, ``registry_push``).  [Row]."""
    from trovestack.cloud import registry

    if plan.registry_push:
        return [results.Row('registry', plan.registry, results.SKIPPED,
                            f'an existing one, pushed to at '
                            f'{plan.registry_push}')]
    host, _, port = plan.registry.rpartition(':')
    started = registry.start(plan.registry_dir, host, int(port))
    return [results.Row('registry', started.address, results.OK,
                        f'data in {plan.registry_dir}')]


def _datastore_images(plan):
    """Build this project's datastore images; push them to the registry
    when that is the source.  [Row]."""
    from trovestack.cloud import registry
    from trovestack.images import datastore as datastore_images

    rows, built = [], []
    for name, version in plan.offline_datastores():
        image = datastore_images.build(name, version)
        built.append(image)
        rows.append(results.Row(
            'datastore-image', f'{name}:{version}',
            results.CREATED if image.built else results.UNCHANGED,
            str(image.path)))
    if plan.image_source == 'registry':
        push_to, _ = plan.registry_addresses()
        for image in built:
            registry.push(image.path, push_to, image.repository, image.tag)
            rows.append(results.Row('registry-image', registry.image_reference(
                plan.registry, image.repository, image.tag), results.OK,
                'pushed'))
    return rows


def build_request(plan):
    """The image builder's request for the one guest image of every
    datastore of ``plan`` (with their images embedded when that is the
    source)."""
    name, version = plan.datastores[0]
    embedded = plan.offline_datastores() \
        if plan.image_source == 'embedded' else ()
    return builder.BuildRequest(
        datastore=name, datastore_version=version, guest_os=plan.guest_os,
        guest_release=plan.guest_release, guest_user=plan.guest_user,
        output_dir=plan.image_dir, mirror=plan.mirror,
        force=plan.force_build, cache_dir=plan.cache_dir,
        agent_source=plan.agent_source, agent_path=plan.agent_path,
        agent_ref=plan.agent_ref,
        embed_datastore_images=tuple(f'{ds}:{ver}' for ds, ver in embedded))


def _host_messaging(plan, context):
    """Plug this host's management port in; guests get the messaging URL
    through it, or through the gateway address this host holds on the
    management network (``context.guest_transport_url``).  [Row]."""
    prepared = context.prepared
    rows, address = [], plan.wanted.gateway or None
    if prepared.port is not None:
        rows = instance_prereqs.plug_host_port(
            prepared.port, plan.wanted.cidr, bridge=plan.host_bridge)
        address = prepared.port.fixed_ips[0]['ip_address']
    if address is None:
        return rows
    server = ini.IniFile.load(plan.config_files[trove_config.TROVE_CONF])
    url = server.get('DEFAULT', 'transport_url')
    if url and not url.startswith('fake:'):
        context.guest_transport_url = instance_prereqs.guest_transport_url(
            url, address)
    return rows


def instance_settings(plan, prepared, guest_transport_url=None,
                      backup_images=None):
    """:class:`trove_config.InstanceSettings` from the plan, what
    :func:`instance_prereqs.converge` found or made and the backup images
    ({datastore: repository}; none: Trove's default, quay.io's)."""
    insecure = list(plan.insecure_registries)
    if plan.uses_registry() and plan.registry not in insecure:
        insecure.insert(0, plan.registry)
    settings = instance_setup.instance_settings(
        prepared, docker_images=plan.docker_images(),
        backup_docker_images=backup_images or {},
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


def plan_steps(plan):
    """The extra phase's steps for ``plan``; checks the settings first."""
    plan.docker_images()  # a bad image setting fails before any work
    if plan.image and not pathlib.Path(plan.image).is_file():
        raise errors.UserError(f'guest image {plan.image} does not exist')
    targets = list(dict.fromkeys(plan.datastores))
    defaults = default_versions(targets)
    out = []
    if plan.volume_support and plan.volume_type:
        out.append(steps.Step('volume-type', plan.volume_type,
                              lambda context: _volume_type(context.conn,
                                                           plan)))
    if plan.uses_registry():
        out.append(steps.Step('registry', plan.registry,
                              lambda context: _registry(plan)))
    if plan.offline_datastores():
        out.append(steps.Step(
            'datastore-images', ' '.join(f'{ds}:{ver}' for ds, ver
                                         in plan.offline_datastores()),
            lambda context: _datastore_images(plan)))
    if not plan.image:
        out.append(steps.build_image(build_request(plan)))
    how = steps.Load(
        tree=plan.config_params_tree,
        load_parameters=plan.config_params_tree is not None,
        trove_conf=plan.config_files[trove_config.TROVE_CONF]
        if plan.trove_manage else None, trove_manage=plan.trove_manage,
        visibility=plan.visibility, guest_os=plan.guest_os,
        guest_release=plan.guest_release)
    out += [steps.load_image(plan.image or '<built image>', name, version,
                             default=(name, version) in defaults, how=how)
            for name, version in targets]
    if plan.backups_from_registry():
        # Backups and restores run in images of this project, from the
        # registry, with the backup/ code of the Trove tested.
        out.append(steps.backup_images(
            targets, plan.registry_addresses, plan.backup_source,
            missing='no registry'))
    out.append(steps.instance_prerequisites(lambda: plan.wanted))
    out.append(steps.Step('host-messaging', plan.host_bridge,
                          lambda context: _host_messaging(plan, context)))
    out.append(steps.trove_configuration(
        lambda context: instance_settings(
            plan, context.prepared, context.guest_transport_url,
            context.backup_images),
        lambda: plan.config_files,
        default_datastore=default_datastore(plan.datastores),
        extra=lambda: trove_config.limits_config(plan.limits)))
    return out


def extra(conn, plan):
    """The whole extra phase; [Row] of everything looked at."""
    return steps.run(plan_steps(plan),
                     steps.Context(conn=conn, image=plan.image))
