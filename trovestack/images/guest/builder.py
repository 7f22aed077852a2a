"""Build a Trove guest image: validate, hash, skip or run diskimage-builder.

``build_image(request) -> BuildResult`` is the library entry point: the
``build-image`` command (trove-image-builder) and
trovestack.orchestration.provision call it.  ``plan_build(request)``
validates a request without touching the host.
"""

import contextlib
import dataclasses
import datetime
import hashlib
import logging
import os
import pathlib
import subprocess
import time
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Mapping
from typing import Any
from typing import TypeVar

import load_image
from trovestack.common import files
from trovestack.common import netns
from trovestack.common import stamps
from trovestack.common import workdirs
from trovestack.images.guest import agent_layer
from trovestack.images.guest import dib
from trovestack.images.guest import embedded
from trovestack.images.guest import errors
from trovestack.images.guest import guest_agent
from trovestack.images.guest import hashing
from trovestack.images.guest import host
from trovestack.images.guest import mirrors
from trovestack.images.guest import plugins

LOG = logging.getLogger(__name__)

_P = TypeVar('_P')

REPO_ROOT = pathlib.Path(__file__).resolve().parents[3]
ELEMENTS_DIR = REPO_ROOT / 'integration' / 'elements'
SHIMS_DIR = REPO_ROOT / 'tools' / 'dib-shims'
# The build record and the build hash next to the image, named as
# load-trove-image reads them.
SIDECAR_SUFFIX = load_image.SIDECAR_SUFFIX
# Work directories beside the output: .build-<pid>-<random>, owned by the
# build (trovestack.common.workdirs); diskimage-builder's TMP_DIR (its
# dib_build.*, dib_image.* with their mounts) is WORKDIR_TMP in it.
WORKDIR_PREFIX = '.build-'
WORKDIR_TMP = 'tmp'
BUILD_HASH_SUFFIX = load_image.BUILD_HASH_SUFFIX
FORMATS = ('qcow2', 'raw')
# The guest image's login user unless asked otherwise (Trove's files go to it).
GUEST_USER = 'trove'
BASE_IMAGES = ('cached', 'download', 'local')
MIN_FREE_BYTES = 4 * host.GIB
# How an image came to be (BuildResult.build_path, the sidecar's
# 'build_path'): diskimage-builder from scratch, the previous image with
# another guest agent put in (agent_layer), or nothing to do.
FULL, AGENT_ONLY, SKIPPED = 'full', 'agent-only', 'skipped'
# The build hash input the base hash leaves out: the agent's identity.
AGENT_INPUT = 'guest_agent'
ARCHES = tuple(host.DIB_ARCHES.values())


def default_cache_dir() -> pathlib.Path:
    """$TROVE_IMAGE_BUILDER_CACHE, or the XDG cache's trove-image-builder."""
    env = os.environ.get('TROVE_IMAGE_BUILDER_CACHE')
    if env:
        return pathlib.Path(env)
    return files.cache_dir('trove-image-builder')


@dataclasses.dataclass
class BuildRequest:
    """What to build. ``None`` fields take the plugin defaults."""

    datastore: str = 'mysql'
    datastore_version: str | None = None
    guest_os: str = 'debian'
    guest_release: str | None = None
    output: str | None = None
    output_dir: str | None = None
    image_format: str = 'qcow2'
    size: int | None = None
    extra_elements: tuple = ()
    ssh_key: str | None = None
    guest_user: str = GUEST_USER
    agent_source: str = guest_agent.PIP
    agent_ref: str | None = None
    agent_path: str | None = None
    base_image: str = 'cached'
    base_image_path: str | None = None
    mirror: str | None = None
    security_mirror: str | None = None
    force: bool = False
    cache_dir: str | None = None
    debug_trace: bool = False
    arch: str | None = None
    # ('mariadb:11.8', ...): datastore images baked into the guest image
    embed_datastore_images: tuple = ()


@dataclasses.dataclass
class BuildResult:
    path: str
    sha256: str
    build_hash: str
    skipped: bool
    log_path: str
    sidecar_path: str
    # FULL, AGENT_ONLY or SKIPPED
    build_path: str = FULL
    # where the image's guest agent comes from (the 'source' of
    # guest_agent.provenance: release:26.0.0, tree:<path>@<commit>, ...)
    agent_source: str = ''


@dataclasses.dataclass
class Plan:
    """A validated request with everything derived from it."""

    request: BuildRequest
    datastore: plugins.DatastorePlugin
    guest_os: plugins.GuestOSPlugin
    release: str
    version: str
    output: pathlib.Path
    cache_dir: pathlib.Path
    elements: list
    arch: str | None = None
    mirror: str | None = None
    security_mirror: str | None = None
    embedded: list = dataclasses.field(default_factory=list)


def _choose(kind: str, name: str, available: Mapping[str, _P]) -> _P:
    if name not in available:
        raise errors.BuildError('Unknown %s %r; valid: %s'
                                % (kind, name, ', '.join(sorted(available))))
    return available[name]


def _default_output_name(plan: Plan) -> str:
    stem = 'trove-guest-%s-%s-container' % (plan.guest_os.name, plan.release)
    for name in plan.request.embed_datastore_images:
        stem += '-' + name.replace(':', '-')
    if plan.request.guest_user != GUEST_USER:
        stem += '-' + plan.request.guest_user  # another login user
    if plan.arch != host.host_arch():
        # plan_build() set the arch
        stem += '-' + plan.arch  # type: ignore[operator]
    return '%s.%s' % (stem, plan.request.image_format)


def _validate_files(request: BuildRequest) -> None:
    if request.image_format not in FORMATS:
        raise errors.BuildError('Unknown format %r; valid: %s'
                                % (request.image_format, ', '.join(FORMATS)))
    if request.base_image not in BASE_IMAGES:
        raise errors.BuildError('Unknown base image source %r; valid: %s'
                                % (request.base_image, ', '.join(BASE_IMAGES)))
    if request.base_image == 'local':
        path = request.base_image_path
        if not path or not os.path.isfile(path):
            raise errors.BuildError(
                '--base-image local needs --base-image-path naming a '
                'debootstrap tarball (.tar.gz)')
    if request.ssh_key and not os.path.isfile(request.ssh_key):
        raise errors.BuildError('SSH public key file %s does not exist'
                                % request.ssh_key)
    if request.arch is not None and request.arch not in ARCHES:
        raise errors.BuildError('Unknown architecture %r; valid: %s'
                                % (request.arch, ', '.join(ARCHES)))
    if request.size is not None and request.size < 1:
        raise errors.BuildError('--size must be a positive number of GiB')
    if request.agent_source not in guest_agent.SOURCES:
        raise errors.BuildError('Unknown guest agent source %r; valid: %s'
                                % (request.agent_source,
                                   ', '.join(guest_agent.SOURCES)))
    if request.agent_source == guest_agent.LOCAL and not request.agent_path:
        raise errors.BuildError('--guest-agent-source local needs '
                                '--guest-agent-path')


def _elements(request: BuildRequest, datastore: plugins.DatastorePlugin,
              guest_os: plugins.GuestOSPlugin) -> list[str]:
    elements = [guest_os.dib_element, 'vm', 'trove-guest-agent',
                'trove-guest-docker']
    if request.ssh_key:
        elements.append('trove-guest-ssh-key')
    if request.embed_datastore_images:
        elements.append(embedded.ELEMENT)
    elements.extend(request.extra_elements)
    return elements


def plan_build(
        request: BuildRequest,
        datastores: Mapping[str, plugins.DatastorePlugin] | None = None,
        guest_oses: Mapping[str, plugins.GuestOSPlugin] | None = None,
) -> 'Plan':
    """Validate ``request`` without touching the host; return a Plan."""
    if datastores is None:
        datastores = plugins.datastores()
    if guest_oses is None:
        guest_oses = plugins.guest_oses()
    datastore = _choose('datastore', request.datastore, datastores)
    guest_os = _choose('guest OS', request.guest_os, guest_oses)
    release = request.guest_release or guest_os.default_release
    if release not in guest_os.releases:
        raise errors.BuildError('Unknown %s release %r; valid: %s'
                                % (guest_os.name, release,
                                   ', '.join(guest_os.releases)))
    version = request.datastore_version or datastore.default_version
    if version not in datastore.versions:
        raise errors.BuildError('Unknown %s version %r; valid: %s'
                                % (datastore.name, version,
                                   ', '.join(datastore.versions)))
    _validate_files(request)
    embedded.parse(request.embed_datastore_images)
    cache_dir = pathlib.Path(request.cache_dir or default_cache_dir())
    cache_dir = cache_dir.absolute()
    plan = Plan(request=request, datastore=datastore, guest_os=guest_os,
                # output: set below
                release=release, version=version,
                output=None,  # type: ignore[arg-type]
                cache_dir=cache_dir, arch=request.arch or host.host_arch(),
                elements=_elements(request, datastore, guest_os))
    if request.output:
        output = pathlib.Path(request.output)
    else:
        output_dir = pathlib.Path(request.output_dir or cache_dir / 'images')
        output = output_dir / _default_output_name(plan)
    if not output.name.endswith('.' + request.image_format):
        raise errors.BuildError('--output %s must end in .%s'
                                % (output, request.image_format))
    plan.output = output.absolute()
    return plan


def _base_image_identity(plan: Plan) -> str:
    request = plan.request
    if request.base_image == 'local':
        # plan_build() checked the local base image's path
        return 'local:' + hashing.file_digest(
            request.base_image_path)  # type: ignore[arg-type]
    return 'debootstrap:%s:%s:%s:%s' % (plan.guest_os.name, plan.release,
                                        plan.arch, plan.mirror)


def hash_inputs(plan: 'Plan', agent_identity: str) -> dict[str, Any]:
    """The dict the build hash is computed over (kept in the sidecar)."""
    request = plan.request
    inputs = {
        'guest_os': plan.guest_os.name,
        'release': plan.release,
        'format': request.image_format,
        'size': str(request.size or ''),
        'elements': ' '.join(plan.elements),
        'elements_digest': hashing.elements_digest(_element_dirs(request)),
        'guest_user': request.guest_user,
        'guest_agent': agent_identity,
        'guest_requirements': hashing.file_digest(guest_agent.REQUIREMENTS),
        'base_image': _base_image_identity(plan),
        'mirror': plan.mirror or '',
        'security_mirror': plan.security_mirror or '',
        'ssh_key': (hashing.file_digest(request.ssh_key)
                    if request.ssh_key else ''),
        'diskimage_builder': dib.dib_version(),
    }
    if plan.embedded:
        inputs['embedded_datastore_images'] = embedded.hash_value(
            plan.embedded)
    return inputs


def base_hash(inputs: dict[str, Any]) -> str:
    """The build hash of everything but the guest agent: two images with
    the same base hash differ only in the agent's ``trove`` distribution,
    so one is made from the other by the agent step."""
    base = dict(inputs)
    base.pop(AGENT_INPUT, None)
    return hashing.build_hash(dict(base, layer='without the guest agent'))


def _element_dirs(request: BuildRequest) -> list[pathlib.Path]:
    dirs = [ELEMENTS_DIR]
    for extra in os.environ.get('ELEMENTS_PATH', '').split(os.pathsep):
        if extra and request.extra_elements:
            dirs.append(pathlib.Path(extra))
    return dirs


def sidecar_path(image_path: pathlib.Path | str) -> pathlib.Path:
    return stamps.path(image_path, SIDECAR_SUFFIX)


def read_sidecar(image_path: pathlib.Path | str) -> dict[str, Any] | None:
    return stamps.read(image_path, SIDECAR_SUFFIX)


def is_up_to_date(image_path: pathlib.Path | str,
                  build_hash: str | None) -> bool:
    """True when the image and its sidecar match ``build_hash`` untouched
    (and its checksum and build-hash files are there)."""
    return (stamps.fresh(image_path, SIDECAR_SUFFIX, 'build_hash',
                         build_hash) is not None
            and pathlib.Path(f'{image_path}.sha256').is_file()
            and pathlib.Path(f'{image_path}{BUILD_HASH_SUFFIX}').is_file())


def _log_path(plan: Plan) -> pathlib.Path:
    log_dir = plan.cache_dir / 'logs'
    log_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.now().strftime('%Y%m%dT%H%M%S')
    return log_dir / ('%s-%s.log' % (plan.output.name, stamp))


def _one_dib_at_a_time(
        plan: Plan, progress: Callable[[str], None],
) -> contextlib.AbstractContextManager[None]:
    """Hold the builder cache's disk-image-create lock: builds of other
    outputs share DIB's image cache (its apt archives, whose lock apt does
    not wait for: a second build at once failed in root.d with "Could not
    get lock /var/cache/apt/archives/lock"), so they take turns."""
    lock = files.key_lock_path('disk-image-create', str(plan.cache_dir))
    return files.exclusive_lock(lock, on_wait=lambda: progress(
        'Waiting for another disk-image-create using %s to finish'
        % plan.cache_dir))


def _dib_env(plan: Plan, wheelhouse: pathlib.Path, shims: bool,
             workdir: pathlib.Path) -> dict[str, str]:
    request = plan.request
    # The guest installs from the wheelhouse only: host pip settings
    # (indexes, find-links, constraints) must not leak into the chroot.
    env = {k: v for k, v in os.environ.items() if not k.startswith('PIP_')}
    image_cache = plan.cache_dir / 'dib'
    env.update(workdirs.marker_env(workdir))
    env.update({
        # Everything DIB mounts and attaches lives below the work dir.
        'TMP_DIR': str(workdir / WORKDIR_TMP),
        'ELEMENTS_PATH': os.pathsep.join(
            p for p in (str(ELEMENTS_DIR), os.environ.get('ELEMENTS_PATH'))
            if p),
        'DIB_RELEASE': plan.release,
        # plan_build() resolved the mirror
        'DIB_DISTRIBUTION_MIRROR': plan.mirror,  # type: ignore[dict-item]
        'DIB_DEBOOTSTRAP_CACHE': '1',
        'DIB_DEBIAN_USE_DEBOOTSTRAP_CACHE': '1',
        'TROVE_GUEST_WHEELHOUSE': str(wheelhouse),
        'TROVE_GUEST_USER': request.guest_user,
        'PATH': host.search_path(),
    })
    if request.base_image == 'download':
        env.pop('DIB_DEBIAN_USE_DEBOOTSTRAP_CACHE')
    elif request.base_image == 'local':
        image_cache = plan.cache_dir / 'dib-local'
        image_cache.mkdir(parents=True, exist_ok=True)
        link = image_cache / ('debootstrap-%s-%s-%s.tar.gz' % (
            plan.guest_os.name, plan.release, plan.arch))
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(os.path.abspath(  # plan_build() checked it
            request.base_image_path))  # type: ignore[type-var, arg-type]
        env['DIB_DEBOOTSTRAP_CACHE'] = '0'
    env['DIB_IMAGE_CACHE'] = str(image_cache)
    if plan.security_mirror and plan.guest_os.security_mirror_env:
        env[plan.guest_os.security_mirror_env] = plan.security_mirror
    if request.ssh_key:
        env['TROVE_GUEST_SSH_KEY'] = os.path.abspath(request.ssh_key)
    if plan.embedded:
        env[embedded.ENV_VARIABLE] = embedded.env_value(plan.embedded)
    if request.debug_trace:
        env['DIB_DEBUG_TRACE'] = '1'
    if shims:
        env['PATH'] = os.pathsep.join((str(SHIMS_DIR), env['PATH']))
    return env


def _dib_args(plan: Plan, target: pathlib.Path) -> list[str]:
    request = plan.request
    args = ['-a', plan.arch, '-t', request.image_format, '--checksum',
            '-o', str(target)]
    if request.size:
        args += ['--image-size', str(request.size)]
    if request.debug_trace:
        args.append('-x')
    return args + plan.elements  # type: ignore[return-value]  # arch set


def _check_host(plan: Plan, shims: bool) -> None:
    host.check_root()
    extra_tools = {}
    if plan.request.agent_source == guest_agent.GIT:
        extra_tools['git'] = 'git'
    if plan.arch != host.host_arch():
        # A foreign architecture's chroot runs under qemu-user emulation
        # (plan_build() set the arch).
        machine = host.machine_of(plan.arch)  # type: ignore[arg-type]
        extra_tools['qemu-%s-static' % machine] = 'qemu-user-static'
    host.check_tools(device_mapper=not shims, extra=extra_tools)
    dib.disk_image_create()
    host.check_free_space([plan.output.parent, plan.cache_dir], MIN_FREE_BYTES)


def _dib_digests(plan: Plan, workdir: pathlib.Path) -> dict[str, str]:
    """The digests DIB's --checksum wrote beside its image."""
    digests = {}
    for suffix in ('.sha256', '.md5'):
        built = workdir / (plan.output.name + suffix)
        if built.exists():
            # DIB writes the temporary path into the file; keep the name only.
            digests[suffix] = built.read_text().split()[0]
    if '.sha256' not in digests:
        raise errors.BuildError('disk-image-create wrote no %s.sha256'
                                % plan.output.name)
    return digests


def _file_digests(path: pathlib.Path) -> dict[str, str]:
    """{'.sha256': ..., '.md5': ...} of a file, read once."""
    sha256, md5 = hashlib.sha256(), hashlib.md5(usedforsecurity=False)
    with open(path, 'rb') as image:
        while chunk := image.read(4 * 1024 * 1024):
            sha256.update(chunk)
            md5.update(chunk)
    return {'.sha256': sha256.hexdigest(), '.md5': md5.hexdigest()}


def _copy_image(source: pathlib.Path, dest: pathlib.Path) -> None:
    """A copy of an image file, as sparse as the original (a raw image is
    mostly holes), shared blocks where the file system can."""
    result = subprocess.run(['cp', '--reflink=auto', '--sparse=always',
                             str(source), str(dest)], capture_output=True,
                            text=True, stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        raise errors.BuildError('cannot copy %s: %s'
                                % (source, result.stderr.strip()))


def _publish(plan: Plan, image: pathlib.Path, digests: dict[str, str],
             inputs: dict[str, Any], build_hash: str, log_path: pathlib.Path,
             extra: dict[str, Any]) -> str:
    """Move the finished image into place, then its checksums, sidecar last.

    A build killed in between leaves the previous image with its own
    records, or the new image with the previous sidecar (which the next
    build sees as out of date): never records that lie about the image.
    """
    name = plan.output.name
    plan.output.parent.mkdir(parents=True, exist_ok=True)
    sha256 = digests['.sha256']
    os.replace(image, plan.output)
    for suffix, digest in digests.items():
        files.write_atomic(pathlib.Path(str(plan.output) + suffix),
                           '%s  %s\n' % (digest, name))
    sidecar = {
        'build_hash': build_hash,
        'sha256': sha256,
        'datastore': plan.datastore.name,
        'datastore_version': plan.version,
        'guest_os': plan.guest_os.name,
        'guest_release': plan.release,
        'arch': plan.arch,
        'elements': plan.elements,
        'embedded_datastore_images': embedded.sidecar_value(
            plan.embedded),
        'inputs': inputs,
        'built_at': datetime.datetime.now(datetime.timezone.utc).isoformat(),
        'log': str(log_path),
    }
    sidecar.update(extra)
    files.write_atomic(pathlib.Path(str(plan.output) + BUILD_HASH_SUFFIX),
                       build_hash + '\n')
    stamps.write(plan.output, SIDECAR_SUFFIX, sidecar)
    return sha256


def sweep(output_dirs: Iterable[pathlib.Path | str] = (),
          dry_run: bool = False) -> list[workdirs.Swept]:
    """Clean up after guest image builds that were killed: their work
    directories (in the registry, or ``.build-*`` in ``output_dirs``) and
    diskimage-builder's own /tmp/dib_build.*, /tmp/dib_image.* whose
    creator is gone, with what is mounted or attached below them; a
    running build's are never touched.  Returns [workdirs.Swept]."""
    foreign = dib.stray_dirs() if os.geteuid() == 0 else []
    return workdirs.sweep(
        globs=[(directory, WORKDIR_PREFIX) for directory in output_dirs],
        foreign=foreign, dry_run=dry_run)


def _log_progress(message: str) -> None:
    LOG.info('%s', message)


def build_image(
        request: BuildRequest,
        progress: Callable[[str], None] | None = None) -> 'BuildResult':
    """Build the image ``request`` describes, or skip when it is up to date.

    An image whose previous build differs only in the guest agent (same
    base hash) is made from that image by the agent step (agent_layer)
    instead of diskimage-builder.  Returns a BuildResult; raises
    errors.BuildError with a one-line reason.
    """
    progress = progress or _log_progress
    # SIGTERM and SIGHUP unwind like Ctrl-C: the work dir is torn down.
    with netns.terminate_as_interrupt():
        return _build_image(request, progress)


def _build_image(request: BuildRequest,
                 progress: Callable[[str], None]) -> BuildResult:
    plan = plan_build(request)
    if request.agent_source == guest_agent.LOCAL:
        # Before anything is made: a broken tree is one line, not a DIB
        # failure minutes later or an agent that dies in the guest.
        # plan_build() checked a local source's path
        guest_agent.check_tree(request.agent_path)  # type: ignore[arg-type]
    for swept in sweep([plan.output.parent]):
        progress('Cleaned up after a killed build: %s (%s: %s)'
                 % (swept.path, swept.action, swept.detail or 'no mounts'))
    plan.mirror, plan.security_mirror = mirrors.resolve(
        plan.guest_os, request.mirror, request.security_mirror)
    # Archives first: their digests are part of the build hash.
    plan.embedded = embedded.resolve(request.embed_datastore_images,
                                     progress)
    agent_identity = guest_agent.source_identity(
        request.agent_source, request.agent_ref, request.agent_path)
    inputs = hash_inputs(plan, agent_identity)
    build_hash = hashing.build_hash(inputs)
    build = _Build(plan, inputs, build_hash, agent_identity, progress)
    # A concurrent build of the same output waits here, then finds it up
    # to date.
    with files.output_lock(plan.output):
        if not request.force and is_up_to_date(plan.output, build_hash):
            return build.skip()
        previous = None if request.force else _agent_only_source(
            plan.output, build.base_hash)
        if previous is not None:
            return build.agent_only(previous)
        return build.full()


def _agent_only_source(image: pathlib.Path,
                       base: str) -> dict[str, Any] | None:
    """The sidecar of the image at ``image`` when it is complete and
    untouched and has the base hash ``base`` (it differs from the wanted
    image in the guest agent only), else None."""
    sidecar = read_sidecar(image)
    if (not sidecar or sidecar.get('base_hash') != base
            or not is_up_to_date(image, sidecar.get('build_hash'))):
        return None
    return sidecar


class _Build:
    """One build of a planned request: skipped, full or agent-only."""

    def __init__(self, plan: Plan, inputs: dict[str, Any], build_hash: str,
                 agent_identity: str, progress: Callable[[str], None]) -> None:
        self.plan = plan
        self.request = plan.request
        self.inputs = inputs
        self.build_hash = build_hash
        self.base_hash = base_hash(inputs)
        self.agent_identity = agent_identity
        self.progress = progress

    def _provenance(self,
                    wheelhouse: pathlib.Path | None = None) -> dict[str, Any]:
        request = self.request
        return guest_agent.provenance(
            request.agent_source, request.agent_ref, request.agent_path,
            self.agent_identity, wheelhouse)

    def _result(self, sha256: str, log_path: pathlib.Path | str,
                build_path: str, agent: dict[str, Any] | None) -> BuildResult:
        return BuildResult(path=str(self.plan.output), sha256=sha256,
                           build_hash=self.build_hash,
                           skipped=build_path == SKIPPED,
                           log_path=str(log_path),
                           sidecar_path=str(sidecar_path(self.plan.output)),
                           build_path=build_path,
                           agent_source=(agent or {}).get('source', ''))

    def skip(self) -> BuildResult:
        plan = self.plan
        # up to date: its sidecar is there
        sidecar: dict[str, Any] = read_sidecar(  # type: ignore[assignment]
            plan.output)
        self.progress('%s is up to date (build hash %s), skipping'
                      % (plan.output, self.build_hash[:12]))
        agent = sidecar.get('agent')
        if self.request.agent_source == guest_agent.LOCAL:
            # Same content, maybe another tree or commit: say which.
            agent = self._provenance()
            if agent != sidecar.get('agent'):
                sidecar['agent'] = agent
                stamps.write(plan.output, SIDECAR_SUFFIX, sidecar)
        return self._result(sidecar['sha256'], sidecar.get('log', ''),
                            SKIPPED, agent)

    def _extra(self, build_path: str, agent: dict[str, Any],
               **more: object) -> dict[str, Any]:
        return dict(more, build_path=build_path, base_hash=self.base_hash,
                    agent=agent)

    def full(self) -> BuildResult:
        """The build from scratch: wheelhouse, disk-image-create,
        publish."""
        plan, request, progress = self.plan, self.request, self.progress
        shims = not host.has_device_mapper()
        _check_host(plan, shims)
        if shims:
            progress('No device-mapper on this host: using the '
                     'loop-partition shims in %s' % SHIMS_DIR)
        log_path = _log_path(plan)
        started = time.monotonic()
        with open(log_path, 'w') as log:
            progress('Preparing the guest agent wheelhouse (%s)'
                     % self.agent_identity)
            wheelhouse = guest_agent.prepare(
                request.agent_source, request.agent_ref, request.agent_path,
                plan.cache_dir, plan.guest_os.python_version(plan.release),
                log, machine=host.machine_of(
                    plan.arch))  # type: ignore[arg-type]  # arch set
        progress('[%6.1fs] wheelhouse ready: %s'
                 % (time.monotonic() - started, wheelhouse))
        agent = self._provenance(wheelhouse)
        progress('Building %s with elements: %s (log: %s)'
                 % (plan.output, ' '.join(plan.elements), log_path))
        with workdirs.owned(plan.output.parent, WORKDIR_PREFIX,
                            'guest image') as workdir, \
                _one_dib_at_a_time(plan, progress):
            target = workdir / plan.output.name[
                :-len(request.image_format) - 1]
            (workdir / WORKDIR_TMP).mkdir()
            dib.run(_dib_args(plan, target),
                    _dib_env(plan, wheelhouse, shims, workdir), log_path,
                    progress)
            sha256 = _publish(plan, workdir / plan.output.name,
                              _dib_digests(plan, workdir), self.inputs,
                              self.build_hash, log_path,
                              self._extra(FULL, agent))
        return self._result(sha256, log_path, FULL, agent)

    def agent_only(self, previous: dict[str, Any]) -> BuildResult:
        """The previous image with this request's guest agent put in."""
        plan, request, progress = self.plan, self.request, self.progress
        host.check_root()
        host.check_tools(device_mapper=False,
                         extra=agent_layer.tools(request.image_format))
        host.check_free_space([plan.output.parent, plan.cache_dir],
                              plan.output.stat().st_size + host.GIB)
        log_path = _log_path(plan)
        started = time.monotonic()

        def step(message: str) -> None:
            progress('[%6.1fs] %s' % (time.monotonic() - started, message))

        was = (previous.get('agent') or {}).get('source') or previous[
            'inputs'].get(AGENT_INPUT)
        progress('Agent-only rebuild of %s: only the guest agent changed '
                 '(it was %s; log: %s)' % (plan.output, was, log_path))
        with open(log_path, 'w') as log:
            wheels = guest_agent.prepare_agent(
                request.agent_source, request.agent_ref, request.agent_path,
                plan.cache_dir, plan.guest_os.python_version(plan.release),
                log, machine=host.machine_of(
                    plan.arch))  # type: ignore[arg-type]  # arch set
            wheel = guest_agent.agent_wheel(wheels)
            step('agent wheel ready: %s' % wheel.name)
            agent = self._provenance(wheels)
            with workdirs.owned(plan.output.parent, WORKDIR_PREFIX,
                                'guest image') as workdir:
                image = workdir / plan.output.name
                _copy_image(plan.output, image)
                step('copied the previous image')
                agent_layer.replace_agent(image, request.image_format,
                                          wheel, workdir, log)
                step('guest agent replaced')
                digests = _file_digests(image)
                sha256 = _publish(
                    plan, image, digests, self.inputs, self.build_hash,
                    log_path, self._extra(AGENT_ONLY, agent,
                                          previous_sha256=previous['sha256']))
        step('done')
        return self._result(sha256, log_path, AGENT_ONLY, agent)
