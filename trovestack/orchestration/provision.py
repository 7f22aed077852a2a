"""Provision a cloud for Trove's tests: a chain of library calls.

Guest image (built, or given) -> Glance -> Trove datastore versions (the
first version listed of each datastore becomes its default,
:func:`default_versions`) -> on the compute layer, backup images, Trove's
instance prerequisites and configuration -> test flavors -> tempest and
Trove test configuration.  :func:`plan` turns a :class:`ProvisionRequest`
into a list of :class:`trovestack.orchestration.steps.Step` (the profile
of the local cloud, or of another cloud); the devstack plugin's extra
phase is another profile of the same steps
(:func:`trovestack.orchestration.devstack.plan_steps`).  :func:`provision`
runs them in order and reports one result row per step (kind = the step's
name, name = its subject, action = what happened).  Every step converges,
so provisioning again changes nothing.  A new step is one more function in
:mod:`~trovestack.orchestration.steps` and one more entry in the profiles
that need it.
"""

import dataclasses
import logging
import pathlib

from trovestack.common.errors import UserError
from trovestack.common.results import Row
from trovestack.orchestration import steps

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
    local = request.os_cloud is None
    # The Trove the local cloud runs (a release or a source tree): its
    # guest agent goes into the image, its validation rules to Trove.
    trove = _cloud_trove(request)
    tree = trove.path if trove is not None and trove.is_tree else None
    plan_steps = []
    if request.image is None:
        # One guest image serves every datastore: built once.
        plan_steps.append(steps.build_image(_build_request(
            request, targets[0],
            embed=tuple(f'{n}:{v}' for n, v in targets) if compute else (),
            agent=guest_agent(request, tree))))
    # On the local cloud the versions' configuration parameters come from
    # the Trove it runs (configuration groups need them), every one of
    # them through trove-manage and the cloud's trove.conf.
    how = steps.Load(tree=tree, load_parameters=local,
                     trove_conf=_local_trove_conf(request) if local else None)
    plan_steps += [steps.load_image(request.image or '<built image>', name,
                                    version,
                                    default=(name, version) in defaults,
                                    how=how)
                   for name, version in targets]
    if compute:
        # Backup images, management network, security group, keypair,
        # quotas, the users' networks and Trove's configuration for
        # instances on the compute layer.
        plan_steps += _instance_steps(request, targets)
    # The flavors are Nova's alone: created while the image uploads.
    plan_steps.append(steps.Step('flavors', '', _flavors, beside=True))
    tempest_conf, trove_conf = config_paths(request)
    describe = f'--tempest-conf {tempest_conf} --trove-test-conf {trove_conf}'
    for name, version in targets:
        describe += f' --datastore {name}:{version}'
    # On the local cloud tempest.conf is complete: its admin account goes
    # in (the file is private), so gate-tests runs with nothing more.
    if local:
        describe += ' --with-credentials'
    plan_steps.append(steps.Step('test-config', describe, _test_config_step(
        request, tempest_conf, trove_conf, targets, credentials=local),
        needs=('flavors',)))
    return plan_steps


def provision(request, *, dry_run=False):
    """Run every step (or, with dry_run, list them); one row per step."""
    plan_steps = plan(request)
    if dry_run:
        return [Row(step.name, step.describe, WOULD_RUN)
                for step in plan_steps]
    rows = []
    if request.os_cloud is None:
        rows.append(_start_local_cloud(request))
    from trovestack.common import connection

    # A given image is loaded as it is: no step of its own.
    context = steps.Context(image=request.image, conn=connection.connect(
        cloud=request.os_cloud, region_name=request.region_name,
        api_timeout=request.api_timeout))
    connection.require_admin(context.conn, 'managing Trove datastores')
    for step, done in steps.run_each(plan_steps, context):
        rows += done if len(done) == 1 and done[0].kind == step.name \
            else [steps.summary(step.name, done)]
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


def _build_request(request, target, embed=(), agent=None):
    """The image builder's request for the one guest image of ``target``
    (datastore, version) with ``embed``'s images and ``agent``'s guest
    agent (see :func:`guest_agent`)."""
    from trovestack.images.guest import builder

    source = {}
    if agent is not None:
        source = dict(zip(('agent_source', 'agent_ref', 'agent_path'),
                          agent, strict=True))
    name, version = target
    return builder.BuildRequest(datastore=name, datastore_version=version,
                                output_dir=request.image_dir,
                                embed_datastore_images=embed, **source)


def _local_trove_conf(request):
    """The local cloud's trove.conf (trove-manage reaches its database)."""
    from trovestack.cloud import configs

    return str(configs.config_file('trove', _local_cloud(request).layout))


def _flavors(context):
    from trovestack.testenv import flavors

    return [result.to_row() for result in flavors.ensure_flavors(
        context.conn, flavors.flavor_specs())]


def _instance_steps(request, targets):
    """The compute layer's profile: its backup images, Trove's instance
    prerequisites on its management network, the users' networks, Trove's
    configuration, and a restart of Trove when that changed."""
    from trovestack.cloud import trove_source
    from trovestack.trove import compute_trove

    local_cloud = _local_cloud(request)
    names = [name for name, _ in targets]
    return [
        steps.backup_images(
            targets, lambda: compute_trove.guest_registry(local_cloud),
            lambda: trove_source.of_cloud(str(local_cloud.layout.root)),
            missing='the cloud runs no registry: trovestack cloud up '
            '--compute --registry'),
        steps.instance_prerequisites(
            lambda: compute_trove.wanted(local_cloud)),
        steps.Step('user-networks', f'{compute_trove.PUBLIC_NETWORK}, '
                   f'{compute_trove.USER_NETWORK}, {compute_trove.ROUTER}',
                   lambda context: compute_trove.ensure_user_networks(
                       context.conn, local_cloud)),
        steps.trove_configuration(
            lambda context: compute_trove.instance_settings(
                local_cloud, context.prepared, names,
                backup_images=context.backup_images,
                registries=context.guest_registries),
            lambda: compute_trove.private_config_files(local_cloud.layout),
            default_datastore=names[0],
            extra=lambda: compute_trove.extra_options(local_cloud)),
        steps.Step('restart', ' '.join(compute_trove.TROVE_SERVICES),
                   lambda context: [compute_trove.restart_if_changed(
                       local_cloud)]),
    ]


def _test_config_step(request, tempest_conf, trove_conf, targets, *,
                      credentials=False):
    def run(context):
        from trovestack.orchestration import testconfig

        return testconfig.write_test_config(
            context.conn, testconfig.TestConfigRequest(
                tempest_conf=str(tempest_conf),
                trove_test_conf=str(trove_conf), datastores=list(targets),
                region_name=request.region_name,
                api_timeout=request.api_timeout,
                with_credentials=credentials))
    return run
