"""Build a datastore image: mmdebstrap a root filesystem from Debian
packages, customise it (entrypoint, healthcheck, uid, locale), then wrap
it as a docker-archive.  No Docker daemon is involved.

The build is skipped when its inputs (suite, packages, mirrors, scripts,
image config, archive format) are unchanged since the archive was
written; ``force`` rebuilds.  The archive is replaced atomically: a
killed build leaves the previous one intact.  Its work directories are
owned by the build (trovestack.common.workdirs): SIGINT/SIGTERM tear them
down at once, a SIGKILLed build's go at the next build or
``trovestack clean``.
"""

import contextlib
import dataclasses
import json
import logging
import os
import pathlib
import shlex
import shutil
import subprocess
import time
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Iterator
from collections.abc import Sequence
from typing import Any

from trovestack.common import errors
from trovestack.common import files
from trovestack.common import netns
from trovestack.common import stamps
from trovestack.common import workdirs
from trovestack.images.datastore import archive
from trovestack.images.datastore import datastores
from trovestack.images.guest import hashing
from trovestack.images.guest import mirrors

LOG = logging.getLogger(__name__)

DATA_DIR = datastores.DATA_DIR
# Bump when the way an image is put together changes.
FORMAT_VERSION = 1
STAMP_SUFFIX = '.inputs.json'
MIN_FREE_BYTES = 2 << 30
BASE_LAYERS = 'base-layers'
# Beside them: the backup images' wheelhouses and the backup/ trees taken
# from Trove releases (both cached, made in owned work dirs).
WHEELHOUSES = 'backup-wheels'
BACKUP_TREES = 'backup-trees'
DEBIAN_RELEASES = ('bullseye', 'bookworm', 'trixie', 'forky', 'sid')
# Left out of the image: documentation only.
PATH_EXCLUDES = ('/usr/share/doc/*', '/usr/share/man/*', '/usr/share/info/*',
                 '/usr/share/lintian/*')


class BuildError(errors.UserError):
    """The datastore image could not be built."""


@dataclasses.dataclass
class DatastoreImage:
    """A built (or found up to date) datastore image archive."""

    datastore: str
    version: str
    path: pathlib.Path
    sha256: str
    repository: str
    tag: str
    built: bool
    image_id: str = ''
    size: int = 0
    inputs_hash: str = ''
    seconds: float = 0.0

    @property
    def reference(self) -> str:
        """repository:tag, the name `docker load` gives the image."""
        return f'{self.repository}:{self.tag}'


def default_output_dir() -> pathlib.Path:
    """$TROVESTACK_DATASTORE_IMAGE_CACHE, else the XDG cache's
    trovestack/datastore-images."""
    override = os.environ.get('TROVESTACK_DATASTORE_IMAGE_CACHE')
    if override:
        return pathlib.Path(override)
    return files.cache_dir('trovestack', 'datastore-images')


def archive_name(spec: datastores.ImageSpec) -> str:
    return f'trovestack-{spec.image_name}-{spec.version}.tar'


def base_layer_name(spec: datastores.ImageSpec) -> str:
    return f'{spec.image_name}-{spec.version}-rootfs.tar'


def debian_mirrors(
        entries: Iterable[tuple[str, Sequence[str]]],
) -> tuple[str | None, str | None]:
    """(archive, security) Debian mirror URIs among apt's (uri, suites)."""
    archive_uri = security_uri = None
    for uri, suites in entries:
        releases = {suite.split('-', 1)[0] for suite in suites}
        if not releases & set(DEBIAN_RELEASES):
            continue
        if any(suite.endswith('-security') for suite in suites):
            security_uri = security_uri or uri.rstrip('/')
        else:
            archive_uri = archive_uri or uri.rstrip('/')
    return archive_uri, security_uri


def resolve_mirrors(
        mirror: str | None = None,
        security_mirror: str | None = None) -> tuple[str | None, str | None]:
    """Explicit mirrors win; otherwise the ones the host's apt uses."""
    if mirror:
        return mirror.rstrip('/'), security_mirror
    found, found_security = debian_mirrors(mirrors.apt_entries())
    if not found:
        raise BuildError('No Debian mirror in the apt sources of this host: '
                         'pass a mirror explicitly')
    return found, security_mirror or found_security


def apt_sources(spec: datastores.ImageSpec, mirror: str | None,
                security_mirror: str | None) -> list[str]:
    """The sources.list lines mmdebstrap uses for spec's suite."""
    lines = [f'deb {mirror} {spec.suite} main',
             f'deb {mirror} {spec.suite}-updates main']
    if security_mirror:
        lines.append(f'deb {security_mirror} {spec.suite}-security main')
    return lines


def _hook(script: str, *args: object) -> str:
    """A --customize-hook running bash DATA_DIR/script on the root
    filesystem ("$1") with args."""
    quoted = ' '.join(shlex.quote(str(arg)) for arg in args)
    return (f'--customize-hook=bash {shlex.quote(str(DATA_DIR / script))} '
            f'"$1" {quoted}')


def mmdebstrap_argv(
        spec: datastores.ImageSpec, sources: list[str],
        layer_path: pathlib.Path | str,
        hooks: Iterable[datastores.Hook] | None = None) -> list[str]:
    """The mmdebstrap command that writes spec's base layer: the root
    filesystem from Debian packages, customised by ``hooks`` ((script in
    DATA_DIR, arguments); default: the datastore image's customize.sh and
    its own hook)."""
    argv = ['mmdebstrap', '--variant=essential', '--format=tar',
            '--aptopt=APT::Install-Recommends "false"',
            f'--include={",".join(spec.all_packages)}']
    argv += [f'--dpkgopt=path-exclude={path}'
             for path in PATH_EXCLUDES + spec.excludes]
    # without ``hooks``: a datastore image's spec (a backup image's
    # hooks need its wheelhouse)
    for script, args in (spec.customize_hooks()  # type: ignore[call-arg]
                         if hooks is None else hooks):
        argv.append(_hook(script, *args))
    return argv + [spec.suite, str(layer_path)] + sources


def base_inputs(spec: datastores.ImageSpec,
                sources: Sequence[str]) -> dict[str, str]:
    """What decides the base layer (the slow part: Debian packages)."""
    inputs = {
        'format': str(FORMAT_VERSION),
        'datastore': spec.name,
        'suite': spec.suite,
        'packages': ' '.join(spec.all_packages),
        'sources': '\n'.join(sources),
        'path_excludes': ' '.join(PATH_EXCLUDES),
        **spec.hook_inputs(),
    }
    # Only the images that have them: the others' hashes stay as they were.
    if spec.excludes:
        inputs['excludes'] = ' '.join(spec.excludes)
    return inputs


def image_inputs(spec: datastores.ImageSpec, base_hash: str,
                 top: dict[str, str] | None = None) -> dict[str, str]:
    """What decides the image: its base layer, its top layer (``top``;
    default: a datastore image's scripts), the image config and the
    archive format."""
    if top is None:
        # without ``top``: a datastore image's spec
        top = {'scripts': files.tree_digest([DATA_DIR / spec.datastore]),
               'runtime_dirs': repr(
                   spec.runtime_dirs)}  # type: ignore[union-attr]
    return {
        'base_layer': base_hash,
        **top,
        'image_config': json.dumps(spec.image_config().as_docker_config(),
                                   sort_keys=True),
        'archive_writer': files.file_sha256(archive.__file__),
    }


def script_files(
        spec: datastores.DatastoreSpec) -> dict[str, tuple[pathlib.Path, int]]:
    """{path in the image: (source file, mode)} of the top layer."""
    scripts = DATA_DIR / spec.datastore
    found = {'/usr/local/bin/entrypoint.sh': (scripts / 'entrypoint.sh',
                                              0o755)}
    if (scripts / 'healthcheck.sh').exists():
        found['/usr/local/bin/healthcheck.sh'] = (
            scripts / 'healthcheck.sh', 0o755)
    return found


def up_to_date(image_path: pathlib.Path | str,
               inputs_hash: str) -> dict[str, Any] | None:
    """The stamp when image_path exists, is the file the stamp describes
    and was built from inputs_hash; else None."""
    return stamps.fresh(image_path, STAMP_SUFFIX, 'inputs_hash',
                        inputs_hash)


def workdir_prefix(name: str) -> str:
    """Work directories of the build of ``name``: .<name>.build-<pid>-*
    beside it."""
    return f'.{name}.build-'


def _work_globs(
        output_dirs: Iterable[pathlib.Path | str],
) -> Iterator[tuple[pathlib.Path, str]]:
    """(directory, work dir prefix) of every image and base layer, and of
    the backup images' wheelhouses and Trove trees."""
    specs: list[datastores.ImageSpec] = [
        *datastores.SPECS.values(), *datastores.BACKUP_SPECS.values()]
    for directory in dict.fromkeys(pathlib.Path(d) for d in output_dirs):
        for spec in specs:
            yield directory, workdir_prefix(archive_name(spec))
            yield (directory / BASE_LAYERS,
                   workdir_prefix(base_layer_name(spec)))
        for subdir in (WHEELHOUSES, BACKUP_TREES):
            yield directory / subdir, workdir_prefix(subdir)


def sweep(output_dirs: Iterable[pathlib.Path | str] = (),
          dry_run: bool = False) -> list[workdirs.Swept]:
    """Clean up after datastore image builds that were killed: the
    registered work directories and those beside the archives and base
    layers in ``output_dirs``, with what is mounted below them; a running
    build's are never touched.  Returns [workdirs.Swept]."""
    return workdirs.sweep(globs=list(_work_globs(output_dirs)),
                          dry_run=dry_run)


def _check_host(output_dir: pathlib.Path) -> None:
    if shutil.which('mmdebstrap') is None:
        raise BuildError('mmdebstrap not found on PATH: install the Debian '
                         'package mmdebstrap')
    free = shutil.disk_usage(output_dir).free
    if free < MIN_FREE_BYTES:
        raise BuildError(f'Only {free >> 20} MiB free in {output_dir}; a '
                         f'datastore image build needs '
                         f'{MIN_FREE_BYTES >> 30} GiB')


def _run_mmdebstrap(argv: list[str], workdir: pathlib.Path,
                    report: Callable[[str], None]) -> None:
    """Run mmdebstrap, reporting its step lines; BuildError with the tail
    of its output when it fails."""
    env = dict(os.environ, TMPDIR=str(workdir), **workdirs.marker_env(workdir))
    tail: list[str] = []
    with subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, errors='replace', env=env) as process:
        for line in process.stdout:  # type: ignore[union-attr]  # a PIPE
            line = line.rstrip()
            tail = (tail + [line])[-20:]
            if line.startswith('I: ') and 'tempdir' not in line:
                report(line[3:])
    if process.returncode != 0:
        errors_seen = [line for line in tail if line.startswith('E: ')]
        last = (errors_seen or tail or ['no output'])[-1]
        LOG.error('mmdebstrap output:\n%s', '\n'.join(tail))
        raise BuildError(f'mmdebstrap failed (exit {process.returncode}): '
                         f'{last}')


def _fresh(path: pathlib.Path, inputs_hash: str,
           force: bool) -> dict[str, Any] | None:
    return None if force else up_to_date(path, inputs_hash)


def _write_stamp(path: pathlib.Path, inputs_hash: str, inputs: dict[str, str],
                 **extra: object) -> dict[str, Any]:
    return stamps.write(path, STAMP_SUFFIX, {
        'inputs_hash': inputs_hash, 'inputs': inputs, **extra})


def _workdir(directory: pathlib.Path,
             name: str) -> contextlib.AbstractContextManager[pathlib.Path]:
    """A work dir beside name, owned by this build (torn down and removed
    when the block is left)."""
    return workdirs.owned(directory, workdir_prefix(name), 'datastore image')


def build_base_layer(
        spec: datastores.ImageSpec, sources: list[str], *,
        force: bool = False, report: Callable[[str], None] | None = None,
        hooks: Callable[[], Iterable[datastores.Hook]] | None = None,
) -> tuple[pathlib.Path, str]:
    """The cached base layer tar of spec: (path, inputs hash).
    ``hooks()``, called only when the layer is (re)built, gives
    mmdebstrap's customize hooks (default: the spec's own)."""
    report = report or (lambda message: None)
    inputs = base_inputs(spec, sources)
    inputs_hash = hashing.build_hash(inputs)
    layers = default_output_dir() / BASE_LAYERS
    layers.mkdir(parents=True, exist_ok=True)
    path = layers / base_layer_name(spec)
    with files.output_lock(path):
        if _fresh(path, inputs_hash, force):
            report(f'base layer {path} is up to date')
            return path, inputs_hash
        _check_host(layers)
        with _workdir(layers, path.name) as workdir:
            layer = workdir / 'rootfs.tar'
            report(f'building the root filesystem from Debian {spec.suite} '
                   f'({", ".join(spec.packages)})')
            _run_mmdebstrap(
                mmdebstrap_argv(spec, sources, layer,
                                hooks() if hooks else None),
                workdir, report)
            os.replace(layer, path)
        _write_stamp(path, inputs_hash, inputs)
    return path, inputs_hash


def build(datastore: str, version: str, *,
          output_dir: pathlib.Path | str | None = None, force: bool = False,
          progress: Callable[[str], None] | None = None,
          mirror: str | None = None,
          security_mirror: str | None = None) -> 'DatastoreImage':
    """Build (or find up to date) the image of datastore:version.

    Two layers: the Debian root filesystem (cached on its own, since it
    takes minutes) and our scripts.  ``progress(message)`` is called on
    each long step.  Returns a :class:`DatastoreImage`; ``built`` says
    whether work was done.  SIGTERM and SIGHUP unwind like Ctrl-C, so the
    build's work directories are torn down.
    """
    spec = datastores.find(datastore, version)

    def top_layer(path: pathlib.Path) -> pathlib.Path | str:
        return archive.write_layer(path, script_files(spec),
                                   spec.runtime_dirs, datastores.SERVICE_UID)

    with netns.terminate_as_interrupt():
        return build_layers(
            spec, top_layer, lambda base_hash: image_inputs(spec, base_hash),
            output_dir=output_dir, force=force, progress=progress,
            mirror=mirror, security_mirror=security_mirror)


def build_layers(
        spec: datastores.ImageSpec,
        top_layer: Callable[[pathlib.Path], pathlib.Path | str],
        inputs_of: Callable[[str], dict[str, str]], *,
        output_dir: pathlib.Path | str | None = None, force: bool = False,
        progress: Callable[[str], None] | None = None,
        mirror: str | None = None, security_mirror: str | None = None,
        hooks: Callable[[], Iterable[datastores.Hook]] | None = None,
) -> 'DatastoreImage':
    """The docker-archive of ``spec`` (a datastore or backup image spec):
    its cached base layer, then ``top_layer(path)`` (writes the small top
    layer tar), skipped when ``inputs_of(base layer hash)`` is what the
    archive was built from.  ``hooks``: see :func:`build_base_layer`."""
    output_dir = pathlib.Path(output_dir or default_output_dir()).absolute()
    output_dir.mkdir(parents=True, exist_ok=True)
    image_path = output_dir / archive_name(spec)
    mirror, security_mirror = resolve_mirrors(mirror, security_mirror)
    sources = apt_sources(spec, mirror, security_mirror)
    started = time.monotonic()

    def report(message: str) -> None:
        if progress is None:
            LOG.info('%s: %s', spec.name, message)
        else:
            progress(f'{spec.name}: {message}')

    def result(stamp: dict[str, Any], built: bool) -> DatastoreImage:
        return DatastoreImage(
            datastore=spec.datastore, version=spec.version, path=image_path,
            sha256=stamp['sha256'], repository=spec.repository, tag=spec.tag,
            built=built, image_id=stamp.get('image_id', ''),
            size=stamp['size'], inputs_hash=stamp['inputs_hash'],
            seconds=time.monotonic() - started)

    for swept in sweep([output_dir, default_output_dir()]):
        report(f'cleaned up after a killed build: {swept.path} '
               f'({swept.action}: {swept.detail or "no mounts"})')
    inputs = inputs_of(hashing.build_hash(base_inputs(spec, sources)))
    inputs_hash = hashing.build_hash(inputs)
    # One build per archive at a time: a concurrent build of the same
    # image waits, then finds it up to date.
    with files.output_lock(image_path):
        stamp = _fresh(image_path, inputs_hash, force)
        if stamp is not None:
            report(f'{image_path} is up to date')
            return result(stamp, built=False)

        _check_host(output_dir)
        base, _ = build_base_layer(spec, sources, force=force, report=report,
                                   hooks=hooks)
        with _workdir(output_dir, image_path.name) as workdir:
            top = top_layer(workdir / 'top.tar')
            report(f'writing the docker-archive {image_path} '
                   f'({base.stat().st_size >> 20} MiB base layer)')
            image_id = archive.write_docker_archive(
                [base, top], image_path, spec.repository, spec.tag,
                spec.image_config(),
                created_by=f'trovestack build-datastore-image {spec.name}')
        stamp = _write_stamp(image_path, inputs_hash, inputs,
                             sha256=files.file_sha256(image_path),
                             image_id=image_id,
                             reference=f'{spec.repository}:{spec.tag}')
        done = result(stamp, built=True)
        report(f'built {image_path} ({done.size >> 20} MiB) in '
               f'{done.seconds:.0f} s')
        return done
