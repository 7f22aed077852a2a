"""Provision a cloud for Trove's tests: a chain of library calls.

Guest image (built, or given) -> Glance -> Trove datastore versions (the
first version listed of each datastore becomes its default,
:func:`default_versions`) -> test flavors -> tempest
and Trove test configuration.  :func:`plan` turns a
:class:`ProvisionRequest` into a list of :class:`Step` objects;
:func:`provision` runs them in order, each calling one library function and
reporting one result row (kind = the step's name, name = its subject,
action = what happened).  Every step converges, so provisioning again
changes nothing.  A new step is one more function and one more entry in
:func:`plan`.
"""

import dataclasses
import logging
import pathlib

from trovestack.common.errors import UserError
from trovestack.common.results import SKIPPED
from trovestack.common.results import Row

LOG = logging.getLogger(__name__)

WOULD_RUN = 'would run'


@dataclasses.dataclass
class ProvisionRequest:
    """What to provision; without ``os_cloud``, the local cloud."""

    datastores: list  # [(name, version or None)]
    image: str | None = None  # a guest image file; None: build one
    image_dir: str | None = None
    tempest_conf: str | None = None
    trove_test_conf: str | None = None
    os_cloud: str | None = None
    region_name: str | None = None
    api_timeout: float = 10.0
    state_dir: str | None = None
    base_port: int | None = None
    # The guest agent of a built image (trove-image-builder's
    # --guest-agent-source/-ref/-path); None: the Trove tree the local
    # cloud runs, else the release.
    agent_source: str | None = None
    agent_ref: str | None = None
    agent_path: str | None = None


@dataclasses.dataclass
class Context:
    """What the steps share: the request, the connection, the image."""

    request: ProvisionRequest
    conn: object | None = None
    image: str | None = None


@dataclasses.dataclass(frozen=True)
class Step:
    """One step: ``run(context) -> Row``; ``describe`` is its equivalent
    command line (shown by a dry run)."""

    name: str
    describe: str
    run: object


def plan(request):
    """The steps for ``request``, in order; checks the request first."""
    if request.image is not None and \
            not pathlib.Path(request.image).is_file():
        raise UserError(f'image file {request.image} does not exist')
    if names_local_cloud(request):
        # ``eval "$(trovestack cloud env)"`` (or --os-cloud) selected the
        # local cloud itself: provision it as such (its compute layer,
        # its own trove.conf and tempest.conf), not as a foreign cloud.
        LOG.info('provision: cloud %s is the local cloud in %s',
                 request.os_cloud, _local_cloud(request).layout.root)
        request.os_cloud = None
    targets = [(name, version or default_version(name))
               for name, version in request.datastores]
    defaults = default_versions(targets)
    compute = _has_compute(request)
    # The Trove the local cloud runs (a release or a source tree): its
    # guest agent goes into the image, its validation rules to Trove.
    trove = _cloud_trove(request)
    tree = trove.path if trove is not None and trove.is_tree else None
    steps = []
    for index, (name, version) in enumerate(targets):
        # One guest image serves every datastore: built once.
        if request.image is None and index == 0:
            steps.append(_build_step(
                request, name, version,
                embed=tuple(f'{n}:{v}' for n, v in targets) if compute
                else (), agent=guest_agent(request, tree)))
        # On the local cloud the version's configuration parameters come
        # from the Trove it runs (configuration groups need them), every
        # one of them through trove-manage and the cloud's trove.conf.
        steps.append(_load_step(
            request.image or '<built image>', name, version,
            default=(name, version) in defaults,
            config_params=validation_rules(name, tree=tree)
            if request.os_cloud is None else None,
            trove_config=_local_trove_conf(request)
            if request.os_cloud is None else None))
    if compute:
        # Management network, security group, keypair, quotas and Trove's
        # configuration for instances on the compute layer.
        steps.append(Step('instance-setup', 'management network '
                          '(compute layer)', _instance_setup_step(targets)))
    steps.append(Step('flavors', '', _flavors))
    tempest_conf, trove_conf = config_paths(request)
    describe = f'--tempest-conf {tempest_conf} --trove-test-conf {trove_conf}'
    for name, version in targets:
        describe += f' --datastore {name}:{version}'
    # On the local cloud tempest.conf is complete: its admin account goes
    # in (the file is private), so gate-tests runs with nothing more.
    local = request.os_cloud is None
    if local:
        describe += ' --with-credentials'
    steps.append(Step('test-config', describe, _test_config_step(
        tempest_conf, trove_conf, targets, credentials=local)))
    return steps


def provision(request, *, dry_run=False):
    """Run every step (or, with dry_run, list them); [Row]."""
    steps = plan(request)
    if dry_run:
        return [Row(step.name, step.describe, WOULD_RUN) for step in steps]
    context = Context(request)
    rows = []
    if request.os_cloud is None:
        rows.append(_start_local_cloud(request))
    from trovestack.common import connection

    context.conn = connection.connect(
        cloud=request.os_cloud, region_name=request.region_name,
        api_timeout=request.api_timeout)
    connection.require_admin(context.conn, 'managing Trove datastores')
    for step in steps:
        LOG.info('provision: %s %s', step.name, step.describe)
        rows.append(step.run(context))
    return rows


def default_versions(datastores):
    """The one rule for defaults, here and in the devstack plugin: the
    first version listed for each datastore becomes its default (and the
    first datastore listed is Trove's default datastore)."""
    firsts = {}
    for name, version in datastores:
        firsts.setdefault(name, version)
    return set(firsts.items())


def default_version(datastore):
    """The image builder's default version of ``datastore``."""
    from trovestack.images.guest import plugins

    known = plugins.datastores()
    if datastore not in known:
        raise UserError(
            f'no default version for unknown datastore {datastore!r}; '
            f'give <datastore>:<version> (the image builder knows: '
            f'{", ".join(sorted(known))})')
    return known[datastore].default_version


def config_paths(request):
    """(tempest.conf, Trove's test config) paths, absolute."""
    if request.tempest_conf:
        tempest_conf = pathlib.Path(request.tempest_conf)
    elif request.os_cloud is None:
        tempest_conf = _local_cloud(request).layout.root / 'tempest.conf'
    else:
        tempest_conf = pathlib.Path('tempest.conf')
    tempest_conf = tempest_conf.absolute()
    trove_conf = request.trove_test_conf or \
        tempest_conf.with_name('trove-test.json')
    return tempest_conf, pathlib.Path(trove_conf)


# ------------------------------------------------------------------ steps
def _local_cloud(request):
    from trovestack.cloud import controlplane

    return controlplane.LocalCloud(request.state_dir)


def names_local_cloud(request):
    """True when ``request.os_cloud`` (a clouds.yaml entry) is the local
    cloud of ``request.state_dir``: the same identity endpoint."""
    if request.os_cloud is None:
        return False
    from openstack import config as sdk_config

    from trovestack.cloud import configs

    try:
        named = sdk_config.OpenStackConfig().get_one(cloud=request.os_cloud)
    except Exception:  # noqa: BLE001 - not a cloud we know: not ours
        return False
    auth_url = (named.config.get('auth') or {}).get('auth_url')
    return configs.local_cloud_at(auth_url, request.state_dir) is not None


def _has_compute(request):
    """True when provisioning the local cloud and it has a compute
    layer (``cloud up --compute``)."""
    if request.os_cloud is not None:
        return False
    from trovestack.cloud.compute import cloud as compute_cloud

    return compute_cloud.is_enabled(_local_cloud(request))


def _start_local_cloud(request):
    import os

    from trovestack.cloud import clouds_yaml

    cloud = _local_cloud(request)
    if _has_compute(request):
        from trovestack.cloud.compute import cloud as compute_cloud

        compute_cloud.up_with_control_plane(cloud,
                                            base_port=request.base_port)
    else:
        cloud.up(base_port=request.base_port)
    os.environ.update(cloud.env())
    request.os_cloud = clouds_yaml.ADMIN_CLOUD
    return Row('cloud up', str(cloud.layout.root), 'running')


def _cloud_trove(request):
    """The Trove the local cloud runs (trove_source.TroveSource), or None
    when provisioning another cloud."""
    if request.os_cloud is not None:
        return None
    from trovestack.cloud import trove_source

    return trove_source.of_cloud(request.state_dir)


def guest_agent(request, tree=None):
    """(source, ref, path) of the guest agent to build the image with:
    the request's, else the local cloud's Trove tree ``tree`` (the agent
    and the control plane from one tree), else the image builder's
    default (the release, from PyPI)."""
    if request.agent_source:
        return request.agent_source, request.agent_ref, request.agent_path
    if tree:
        return 'local', None, tree
    return None


def _build_step(request, datastore, version, embed=(), agent=None):
    from trovestack.images.guest import builder

    source = {}
    if agent is not None:
        source = dict(zip(('agent_source', 'agent_ref', 'agent_path'),
                          agent, strict=True))
    build = builder.BuildRequest(datastore=datastore,
                                 datastore_version=version,
                                 output_dir=request.image_dir,
                                 embed_datastore_images=embed, **source)

    def run(context):
        result = builder.build_image(build)
        context.image = result.path
        action = {builder.SKIPPED: 'unchanged, not rebuilt',
                  builder.AGENT_ONLY: 'built (only the guest agent changed)',
                  }.get(result.build_path, 'built')
        if result.agent_source:
            action += f', guest agent {result.agent_source}'
        return Row('build-image', result.path, action)

    describe = f'--datastore {datastore} --datastore-version {version}'
    for name in embed:
        describe += f' --embed-datastore-image {name}'
    if request.image_dir:
        describe += f' --output-dir {request.image_dir}'
    for option, value in zip(('source', 'ref', 'path'), agent or (None,) * 3,
                             strict=True):
        if value:
            describe += f' --guest-agent-{option} {value}'
    return Step('build-image', describe, run)


def _image_name(image):
    """One Glance image per image file, shared by all its datastores."""
    return pathlib.Path(image).name.split('.')[0]


def validation_rules(datastore, tree=None):
    """Trove's validation-rules.json of ``datastore`` in the Trove that
    runs: the source tree ``tree`` (a local cloud started with
    ``--trove-source``), else the Trove package installed here; or None."""
    if tree is not None:
        package = pathlib.Path(tree, 'trove')
    else:
        import importlib.util

        spec = importlib.util.find_spec('trove')
        if spec is None or not spec.submodule_search_locations:
            return None
        package = pathlib.Path(spec.submodule_search_locations[0])
    path = package / 'templates' / datastore / 'validation-rules.json'
    return str(path) if path.is_file() else None


def _local_trove_conf(request):
    """The local cloud's trove.conf (trove-manage reaches its database)."""
    from trovestack.cloud import configs

    return str(configs.config_file('trove', _local_cloud(request).layout))


def _load_step(image_text, datastore, version, *, default,
               config_params=None, trove_config=None):
    import load_image

    def run(context):
        image = context.image or context.request.image
        request = load_image.make_request(
            image, datastore, version, image_name=_image_name(image),
            default=default, config_params=config_params,
            trove_config=trove_config)
        result = load_image.load(context.conn, request,
                                 load_image.read_image(request))
        summary = (f'image {result.image.action} ({result.image.id}), '
                   f'version {result.version.action}')
        if result.version.default:
            summary += ', default'
        if result.parameters is not None:
            summary += f', parameters {result.parameters.summary()}'
        return Row('load-image', f'{datastore} {version}', summary)

    describe = (f'{image_text} --datastore {datastore} --version {version} '
                f'--image-name {_image_name(image_text)}'
                + (' --default' if default else '')
                + (f' --config-params {config_params}' if config_params
                   else '')
                + (f' --trove-config {trove_config}'
                   if config_params and trove_config else ''))
    return Step('load-image', describe, run)


def _flavors(context):
    from trovestack.testenv import flavors

    results = flavors.ensure_flavors(context.conn, flavors.flavor_specs())
    return _summary('flavors', [result.action for result in results])


def _instance_setup_step(targets):
    def run(context):
        from trovestack.trove import compute_trove

        local_cloud = _local_cloud(context.request)
        rows, backups = _backup_images(local_cloud, targets)
        rows += compute_trove.configure(context.conn, local_cloud, targets,
                                        backups=backups)
        return _summary('instance-setup', [row.action for row in rows])
    return run


def _backup_images(local_cloud, datastores):
    """Each datastore's backup image built (or found up to date, with the
    backup/ code of the Trove the cloud runs) and pushed to the local
    cloud's registry, where guests pull it: Trove's agent looks a backup
    image up in its registry before every backup and restore, so an
    embedded copy is not enough.  ([Row], compute_trove.BackupImages)."""
    from trovestack.cloud import trove_source
    from trovestack.images.datastore import backup
    from trovestack.trove import compute_trove
    from trovestack.trove import trove_config

    names = [name for name, _ in datastores]
    addresses = compute_trove.guest_registry(local_cloud)
    if addresses is None:
        return [Row('backup-images', ' '.join(names), SKIPPED,
                    'the cloud runs no registry: trovestack cloud up '
                    '--compute --registry')], compute_trove.BackupImages()
    push_to, guests_pull_from = addresses
    rows = backup.build_and_push(
        datastores, push_to, guests_pull_from,
        source=trove_source.of_cloud(str(local_cloud.layout.root)))
    return rows, compute_trove.BackupImages(
        trove_config.backup_docker_images(
            names, source='registry', registry=guests_pull_from),
        [guests_pull_from])


def _test_config_step(tempest_conf, trove_conf, targets, *,
                      credentials=False):
    def run(context):
        from trovestack.orchestration import testconfig

        rows = testconfig.write_test_config(
            context.conn, testconfig.TestConfigRequest(
                tempest_conf=str(tempest_conf),
                trove_test_conf=str(trove_conf), datastores=list(targets),
                region_name=context.request.region_name,
                api_timeout=context.request.api_timeout,
                with_credentials=credentials))
        return _summary('test-config', [row.action for row in rows])
    return run


def _summary(step, actions):
    """One row for many: '<n> items' and the count of each action."""
    counts = {}
    for action in actions:
        counts[action] = counts.get(action, 0) + 1
    summary = ', '.join(f'{count} {action}'
                        for action, count in sorted(counts.items()))
    return Row(step, f'{len(actions)} items', summary or 'nothing to do')
