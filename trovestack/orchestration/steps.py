"""The steps every orchestration of this project is made of.

A :class:`Step` calls one library function on the :class:`Context` the
steps share and returns the rows of what it looked at.  The orchestrations
are lists of these steps (profiles): :func:`trovestack.orchestration.
provision.plan` for the local cloud and for another cloud, and
:func:`trovestack.orchestration.devstack.plan_steps` for the devstack plugin's
extra phase.  They build, name and load the guest image, take the
configuration parameters from the Trove tree that runs, converge Trove's
instance prerequisites and write Trove's configuration with the same step
functions here; a profile adds only what is its own (the local cloud's
networks and restarts, the plugin's volume type and host port).
"""

import concurrent.futures
import dataclasses
import logging
import pathlib
from collections.abc import Callable
from typing import Any

from trovestack.common import results
from trovestack.trove import instance_prereqs
from trovestack.trove import instance_setup
from trovestack.trove import trove_config

LOG = logging.getLogger(__name__)


@dataclasses.dataclass
class Context:
    """What the steps share: the connection and what earlier steps
    found or made."""

    conn: Any = None
    # The guest image file: given, or what build_image built.
    image: str | None = None
    # What instance_prereqs converged (the management network, ...).
    prepared: instance_prereqs.Prepared | None = None
    # The messaging URL guests are given (None: the server's).
    guest_transport_url: str | None = None
    # {datastore: repository} of the backup images guests pull, and the
    # registries they pull them from (backup_images made them).
    backup_images: dict[str, str] = dataclasses.field(default_factory=dict)
    guest_registries: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass(frozen=True)
class Step:
    """One step: ``run(context) -> [Row]``; ``describe`` says what it acts
    on, as the equivalent command line where there is one (a dry run
    shows it).  A step ``beside`` the others needs nothing they make: it
    starts with the first step, in a thread of its own, and the steps
    that ``need`` it (by name) wait for it."""

    name: str
    describe: str
    run: Callable[[Context], list[results.Row]]
    beside: bool = False
    needs: tuple[str, ...] = ()


def run_each(steps: list[Step],
             context: Context) -> list[tuple[Step, list[results.Row]]]:
    """Run ``steps`` on ``context``: in order, the ``beside`` ones beside
    them; (step, its rows) in the order of ``steps``.  When a step fails,
    the ones running beside it are waited for before the error is
    raised."""
    done: dict[str, list[results.Row]] = {}
    with concurrent.futures.ThreadPoolExecutor() as pool:
        running = {step.name: pool.submit(_logged, step, context)
                   for step in steps if step.beside}
        for step in steps:
            for name in step.needs:
                if name in running:
                    done[name] = running.pop(name).result()
            if not step.beside:
                done[step.name] = _logged(step, context)
        for name, future in running.items():
            done[name] = future.result()
    return [(step, done[step.name]) for step in steps]


def _logged(step: Step, context: Context) -> list[results.Row]:
    LOG.info('%s: %s', step.name, step.describe)
    return step.run(context)


def run(steps: list[Step], context: Context) -> list[results.Row]:
    """Run ``steps`` on ``context`` (:func:`run_each`); every row of
    each."""
    return [row for _, rows in run_each(steps, context) for row in rows]


# ------------------------------------------------------------ the image
# What an image file's name ends with that is not part of the image's
# name (its disk format, a compression).
IMAGE_SUFFIXES = ('.qcow2', '.raw', '.img', '.vmdk', '.vhd', '.vhdx',
                  '.vdi', '.iso', '.gz', '.xz', '.bz2', '.zst')


def image_name(image: str) -> str:
    """The Glance image of an image file: the file's name without its
    format and compression suffixes (a version's dots stay: mariadb-11.8
    and mariadb-11.4 are two images), one Glance image shared by every
    datastore it serves."""
    name = pathlib.Path(image).name
    while name.lower().endswith(IMAGE_SUFFIXES):
        name = name[:name.rindex('.')]
    return name or pathlib.Path(image).name


def build_image(build: Any) -> Step:
    """One guest image built with ``build`` (a
    :class:`trovestack.images.guest.builder.BuildRequest`), or found up
    to date."""
    from trovestack.images.guest import builder

    def run(context: Context) -> list[results.Row]:
        result = builder.build_image(build, progress=LOG.info)
        context.image = result.path
        action = {builder.SKIPPED: 'unchanged, not rebuilt',
                  builder.AGENT_ONLY: 'built (only the guest agent changed)',
                  }.get(result.build_path, 'built')
        if result.agent_source:
            action += f', guest agent {result.agent_source}'
        return [results.Row('build-image', result.path, action)]

    describe = (f'--datastore {build.datastore} '
                f'--datastore-version {build.datastore_version}')
    for name in build.embed_datastore_images:
        describe += f' --embed-datastore-image {name}'
    if build.output:
        describe += f' --output {build.output}'
    elif build.output_dir:
        describe += f' --output-dir {build.output_dir}'
    agent = {option: getattr(build, f'agent_{option}')
             for option in ('source', 'ref', 'path')}
    default = builder.BuildRequest()
    if any(value != getattr(default, f'agent_{option}')
           for option, value in agent.items()):
        describe += ''.join(f' --guest-agent-{option} {value}'
                            for option, value in agent.items() if value)
    return Step('build-image', describe, run)


@dataclasses.dataclass(frozen=True)
class Load:
    """How a datastore version is loaded: its configuration parameters
    from ``tree`` (a Trove source tree, None: the Trove installed here),
    through trove-manage with ``trove_conf`` when that is given."""

    tree: str | None = None
    load_parameters: bool = True
    trove_conf: str | None = None
    trove_manage: str | None = None
    visibility: str | None = None
    guest_os: str | None = None
    guest_release: str | None = None


def load_image(image_text: str, datastore: str, version: str, *,
               default: bool, how: Load = Load()) -> Step:
    """The guest image in Glance (once for all its datastores) and the
    datastore version registered on it, its default and configuration
    parameters with it.  ``image_text``: the image file, or what a dry
    run shows for an image still to be built."""
    import load_image as loader

    config_params = validation_rules(datastore, how.tree) \
        if how.load_parameters else None

    def run(context: Context) -> list[results.Row]:
        image: str = context.image  # type: ignore[assignment]  # given/built
        request = loader.make_request(
            image, datastore, version, image_name=image_name(image),
            default=default, config_params=config_params,
            trove_config=how.trove_conf if config_params else None,
            trove_manage=how.trove_manage if config_params else None,
            visibility=how.visibility, guest_os=how.guest_os,
            guest_release=how.guest_release)
        result = loader.load(context.conn, request,
                             loader.read_image(request))
        summary = (f'image {result.image.action} ({result.image.id}), '
                   f'version {result.version.action}')
        if result.version.default:
            summary += ', default'
        if result.parameters is not None:
            summary += f', parameters {result.parameters.summary()}'
        return [results.Row('load-image', f'{datastore} {version}',
                            summary)]

    describe = (f'{image_text} --datastore {datastore} --version {version} '
                f'--image-name {image_name(image_text)}'
                + (' --default' if default else '')
                + (f' --config-params {config_params}' if config_params
                   else '')
                + (f' --trove-config {how.trove_conf}'
                   if config_params and how.trove_conf else ''))
    return Step('load-image', describe, run)


def validation_rules(datastore: str, tree: str | None = None) -> str | None:
    """Trove's validation-rules.json of ``datastore`` in the Trove that
    runs: the source tree ``tree``, else the Trove package installed
    here; None when it has none."""
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


def backup_images(datastores: list[tuple[str, str]],
                  registry: Callable[[], tuple[str, str] | None],
                  source: Callable[[], Any], *, missing: str) -> Step:
    """Each datastore's backup image built with ``source()``'s backup/
    code (a :class:`trovestack.cloud.trove_source.TroveSource`: the Trove
    tested) and pushed to the registry ``registry()`` names as (address
    this host pushes to, address guests pull from): Trove's agent looks a
    backup image up in its registry before every backup and restore.
    Without a registry (None), skipped with ``missing`` as the reason."""
    names = [name for name, _ in datastores]

    def run(context: Context) -> list[results.Row]:
        from trovestack.images.datastore import backup

        addresses = registry()
        if addresses is None:
            return [results.Row('backup-images', ' '.join(names),
                                results.SKIPPED, missing)]
        push_to, pull_from = addresses
        rows = backup.build_and_push(datastores, push_to, pull_from,
                                     source=source())
        context.backup_images = trove_config.backup_docker_images(
            names, source='registry', registry=pull_from)
        context.guest_registries = [pull_from]
        return rows
    return Step('backup-images', ' '.join(names), run)


# ------------------------------------------------ Trove and its instances
def instance_prerequisites(
        wanted: Callable[[], instance_prereqs.Wanted]) -> Step:
    """Trove's instance prerequisites converged (management network,
    security group, keypair, quotas, host port): ``wanted()`` says
    which."""
    def run(context: Context) -> list[results.Row]:
        context.prepared = instance_prereqs.converge(context.conn, wanted())
        return list(context.prepared.rows)
    return Step('instance-prereqs', 'management network, security group, '
                'keypair, quotas', run)


def trove_configuration(
        settings: Callable[[Context], trove_config.InstanceSettings],
        files: Callable[[], dict[str, pathlib.Path]], *,
        default_datastore: str,
        extra: Callable[[], dict[str, Any]] = dict) -> Step:
    """Trove's configuration for instances written into ``files()``
    ({file name: path}): ``settings(context)`` (from what
    :func:`instance_prerequisites` found) and ``extra()``'s own options."""
    def run(context: Context) -> list[results.Row]:
        return instance_setup.apply(settings(context), files(),
                                    default_datastore=default_datastore,
                                    extra=extra())
    return Step('trove-config', f'{trove_config.TROVE_CONF}, '
                f'{trove_config.GUESTAGENT_CONF}', run)


def summary(step: str, rows: list[results.Row]) -> results.Row:
    """One row for many: '<n> items' and the count of each action."""
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.action] = counts.get(row.action, 0) + 1
    text = ', '.join(f'{count} {action}'
                     for action, count in sorted(counts.items()))
    return results.Row(step, f'{len(rows)} items', text or 'nothing to do')
