"""Backup images: the container Trove's guest agent runs every backup and
restore in (``CONF.<datastore>.backup_docker_image`` + ``:<version>``),
built offline like the datastore images.

Two layers, as a datastore image: the base layer is mmdebstrap's root
filesystem of the datastore image's Debian suite with the backup tools
(``mariadb-backup``, ``postgresql-client-<v>``), Python, ``dumb-init``,
and a venv holding the requirements of Trove's ``backup/`` code, installed
in the chroot with no index from wheels downloaded on this host for the
image's Python (``data/backup-base.sh``); the top layer is that code, the
``backup/`` directory of the Trove tree the cloud runs (or of the
release's sdist), at ``/opt/trove/backup``, the working directory.  A
changed tree rebuilds the top layer only (seconds).
"""

import contextlib
import dataclasses
import email.parser
import hashlib
import os
import pathlib
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Mapping
from typing import TYPE_CHECKING

from packaging import requirements as pep508
from packaging import utils as packaging_utils

from trovestack.common import files
from trovestack.common import netns
from trovestack.common import results
from trovestack.images.datastore import archive
from trovestack.images.datastore import builder
from trovestack.images.datastore import datastores

if TYPE_CHECKING:
    from trovestack.cloud import registry
    from trovestack.cloud import trove_source

# Not part of the image: Trove's unit tests of the backup code.
SKIPPED_DIRS = ('__pycache__', 'tests')
MACHINE = 'x86_64'   # the images are amd64 (archive.ImageConfig)
# Where tools/install-test-deps keeps sdists, when not the XDG cache's.
SDIST_CACHE_ENV = 'TROVESTACK_SDIST_CACHE'
OLDEST_GLIBC_MINOR = 17   # manylinux2014


@dataclasses.dataclass
class BackupImage(builder.DatastoreImage):
    """A built (or up to date) backup image archive, and where its code
    came from."""

    strategy: str = ''     # Trove's backup_strategy for this image
    trove: str = ''        # the Trove its backup/ code is from
    backup_tree: pathlib.Path | None = None


def _pip(args: list[str], what: str) -> None:
    """Run this interpreter's pip; BuildError with the tail of its output."""
    result = subprocess.run(
        [sys.executable, '-m', 'pip', '--disable-pip-version-check',
         *args], stdin=subprocess.DEVNULL, capture_output=True, text=True,
        errors='replace')
    if result.returncode != 0:
        tail = (result.stdout + result.stderr).strip().splitlines()[-5:]
        raise builder.BuildError(f'pip failed {what}: ' + ' | '.join(tail))


def _owned(directory: pathlib.Path,
           name: str) -> contextlib.AbstractContextManager[pathlib.Path]:
    return builder.workdirs.owned(directory, builder.workdir_prefix(name),
                                  'backup image')


def release_sdist(version: str, report: Callable[[str], None]) -> pathlib.Path:
    """The cached sdist of trove ``version`` (tools/install-test-deps keeps
    it in $TROVESTACK_SDIST_CACHE or the XDG cache's trovestack/sdists),
    downloaded from PyPI when missing."""
    sdists = pathlib.Path(os.environ.get(SDIST_CACHE_ENV)
                          or files.cache_dir('trovestack', 'sdists'))
    path = sdists / f'trove-{version}.tar.gz'
    if path.is_file():
        return path
    report(f'downloading the trove {version} sdist into {sdists}')
    sdists.mkdir(parents=True, exist_ok=True)
    with _owned(sdists, path.name) as workdir:
        _pip(['download', '--quiet', '--no-deps', '--no-binary', ':all:',
              '--dest', str(workdir), f'trove=={version}'],
             f'downloading the trove {version} sdist')
        os.replace(workdir / path.name, path)
    return path


def _extract_backup(sdist: pathlib.Path, dest: pathlib.Path) -> pathlib.Path:
    """backup/ of the sdist, unpacked into dest/backup."""
    with tarfile.open(sdist) as tar:
        top = tar.getnames()[0].split('/')[0]
        members = [member for member in tar.getmembers()
                   if member.name.startswith(f'{top}/backup/')]
        if not members:
            raise builder.BuildError(f'{sdist} has no backup/ directory')
        for member in members:
            member.name = member.name[len(top) + 1:]
        tar.extractall(dest, members=members, filter='data')
    return dest / 'backup'


def backup_tree(source: 'trove_source.TroveSource',
                report: Callable[[str], None] | None = None) -> pathlib.Path:
    """The backup/ directory of ``source`` (a trove_source.TroveSource):
    the tree's own, or the release sdist's, unpacked once into the cache."""
    report = report or (lambda message: None)
    if source.is_tree:
        # a tree's source has its path
        tree = pathlib.Path(source.path) / 'backup'  # type: ignore[arg-type]
        if not (tree / 'main.py').is_file():
            raise builder.BuildError(f'{source.path} has no backup/main.py: '
                                     f'not a Trove tree with backup code')
        return tree
    sdist = release_sdist(source.version, report)
    trees = builder.default_output_dir() / builder.BACKUP_TREES
    tree = trees / (f'trove-{source.version}-'
                    f'{files.file_sha256(sdist)[:12]}') / 'backup'
    if (tree / 'main.py').is_file():
        return tree
    trees.mkdir(parents=True, exist_ok=True)
    with _owned(trees, builder.BACKUP_TREES) as workdir:
        _extract_backup(sdist, workdir / 'tree')
        _move_into_place(workdir / 'tree', tree.parent, tree / 'main.py')
    return tree


def _move_into_place(made: pathlib.Path, target: pathlib.Path,
                     marker: pathlib.Path) -> None:
    """Rename the directory ``made`` to ``target``, unless a concurrent
    build got there first (``marker`` exists)."""
    try:
        os.rename(made, target)
    except OSError:
        if not marker.is_file():
            raise


def code_files(tree: pathlib.Path) -> dict[str, tuple[pathlib.Path, int]]:
    """{path in the image: (source, mode)} of the top layer: the backup/
    tree at BACKUP_CODE_DIR, without Trove's tests and bytecode."""
    found = {}
    for path in sorted(pathlib.Path(tree).rglob('*')):
        rel = path.relative_to(tree)
        if (not path.is_file() or path.suffix == '.pyc'
                or set(rel.parts[:-1]) & set(SKIPPED_DIRS)):
            continue
        mode = 0o755 if os.access(path, os.X_OK) else 0o644
        found[f'{datastores.BACKUP_CODE_DIR}/{rel}'] = (path, mode)
    return found


def code_dirs(code: Mapping[str, object]) -> tuple[tuple[str, int], ...]:
    """((directory, mode), ...) above the files of ``code``, root's."""
    dirs = {str(parent) for name in code
            for parent in pathlib.PurePosixPath(name).parents
            if str(parent) != '/'}
    return tuple((name, 0o755) for name in sorted(dirs))


def platforms(spec: datastores.BackupSpec) -> list[str]:
    """pip --platform tags of the wheels the image's glibc runs."""
    return [f'manylinux_2_{minor}_{MACHINE}'
            for minor in range(OLDEST_GLIBC_MINOR, spec.glibc_minor + 1)]


def marker_environment(spec: datastores.BackupSpec) -> dict[str, str]:
    """PEP 508 marker values of the image's Python (CPython on Linux)."""
    version = f'{spec.python_version}.0'
    return {'python_version': spec.python_version,
            'python_full_version': version, 'implementation_version': version,
            'implementation_name': 'cpython',
            'platform_python_implementation': 'CPython',
            'sys_platform': 'linux', 'platform_system': 'Linux',
            'platform_machine': MACHINE, 'os_name': 'posix', 'extra': ''}


def _wheel_requirements(wheel: pathlib.Path) -> list[pep508.Requirement]:
    with zipfile.ZipFile(wheel) as archive_file:
        name = next(n for n in archive_file.namelist()
                    if n.endswith('.dist-info/METADATA'))
        metadata = email.parser.BytesParser().parsebytes(
            archive_file.read(name), headersonly=True)
    return [pep508.Requirement(line)
            for line in metadata.get_all('Requires-Dist') or ()]


def missing_requirements(wheels: pathlib.Path,
                         spec: datastores.BackupSpec) -> list[str]:
    """Requirements of the wheels in ``wheels`` that the image's Python
    needs and none of them provides.  pip download judges markers by the
    interpreter it runs in, not by --python-version: Python 3.13 needs
    what 3.11 does not (webob's legacy-cgi)."""
    found = list(pathlib.Path(wheels).glob('*.whl'))
    have = {packaging_utils.canonicalize_name(wheel.name.split('-')[0])
            for wheel in found}
    environment = marker_environment(spec)
    missing = set()
    for wheel in found:
        for requirement in _wheel_requirements(wheel):
            if (requirement.marker is None
                    or not requirement.marker.evaluate(environment)
                    or packaging_utils.canonicalize_name(requirement.name)
                    in have):
                continue
            requirement.marker = None
            missing.add(str(requirement))
    return sorted(missing)


def wheelhouse(spec: datastores.BackupSpec,
               report: Callable[[str], None]) -> pathlib.Path:
    """A directory of the wheels of spec's requirements for its Python,
    with requirements.txt and constraints.txt: downloaded once per
    (requirements, constraints, Python, platforms), then cached."""
    tags = platforms(spec)
    key = hashlib.sha256('\0'.join(
        [spec.requirements, spec.constraints, spec.python_version, *tags]
    ).encode()).hexdigest()[:16]
    houses = builder.default_output_dir() / builder.WHEELHOUSES
    target = houses / f'py{spec.python_version}-{key}'
    if (target / 'requirements.txt').is_file():
        return target
    report(f'downloading the backup code\'s wheels for Python '
           f'{spec.python_version}')
    houses.mkdir(parents=True, exist_ok=True)
    with _owned(houses, builder.WHEELHOUSES) as workdir:
        wheels = workdir / 'wheels'
        wheels.mkdir()
        (wheels / 'requirements.txt').write_text(spec.requirements)
        (wheels / 'constraints.txt').write_text(spec.constraints)
        wanted = ['--requirement', str(wheels / 'requirements.txt')]
        for _ in range(5):
            _pip(['download', '--quiet', '--dest', str(wheels),
                  '--only-binary=:all:', '--python-version',
                  spec.python_version, '--implementation', 'cp',
                  *[arg for tag in [*tags, 'any']
                    for arg in ('--platform', tag)],
                  '--constraint', str(wheels / 'constraints.txt'), *wanted],
                 f'downloading the wheels of {spec.name}')
            wanted = missing_requirements(wheels, spec)
            if not wanted:
                break
        _move_into_place(wheels, target, target / 'requirements.txt')
    return target


def top_inputs(tree: pathlib.Path) -> dict[str, str]:
    return {'backup_code': files.tree_digest([tree],
                                             skip_dirs=SKIPPED_DIRS)}


def build_backup(datastore: str, version: str, *,
                 source: 'trove_source.TroveSource | None' = None,
                 output_dir: pathlib.Path | str | None = None,
                 force: bool = False,
                 progress: Callable[[str], None] | None = None,
                 mirror: str | None = None,
                 security_mirror: str | None = None) -> 'BackupImage':
    """Build (or find up to date) the backup image of datastore:version
    (the datastore image's name), named
    ``trovestack/db-backup-<datastore>:<version>``.

    ``source``: the Trove (trove_source.TroveSource) whose backup/ code
    goes in; default: the release installed beside trovestack.  The
    inputs hash covers the base layer's inputs (suite, packages, mirrors,
    the hook, Python, Trove's backup requirements and the project's
    constraints), the backup/ tree's digest and the image config.
    Returns a :class:`BackupImage`.
    """
    from trovestack.cloud import trove_env
    from trovestack.cloud import trove_source

    source = source or trove_source.release()
    spec = datastores.find_backup(datastore, version)

    def report(message: str) -> None:
        if progress is None:
            builder.LOG.info('%s: %s', spec.name, message)
        else:
            progress(f'{spec.name}: {message}')

    with netns.terminate_as_interrupt():
        tree = backup_tree(source, report)
        spec = spec.with_venv((tree / 'requirements.txt').read_text(),
                              trove_env.constraints_text())
        code = code_files(tree)

        def top_layer(path: pathlib.Path) -> pathlib.Path | str:
            return archive.write_layer(path, code, code_dirs(code), 0)

        def hooks() -> list[datastores.Hook]:
            return spec.customize_hooks(wheelhouse(spec, report))

        image = builder.build_layers(
            spec, top_layer,
            lambda base_hash: builder.image_inputs(spec, base_hash,
                                                   top_inputs(tree)),
            output_dir=output_dir, force=force,
            progress=progress, mirror=mirror,
            security_mirror=security_mirror, hooks=hooks)
    return BackupImage(**dataclasses.asdict(image), strategy=spec.strategy,
                       trove=source.describe(), backup_tree=tree)


def push_unless_there(archive_path: pathlib.Path | str, registry_address: str,
                      repository: str,
                      tag: str) -> 'registry.PushedImage | None':
    """registry.push unless the registry holds repository:tag with the
    archive's image id already (skopeo would compress every layer again
    to find that out); the pushed image, or None when it was there."""
    from trovestack.cloud import registry

    wanted = archive.image_id(archive_path)
    if registry.config_digest(registry_address, repository, tag) == wanted:
        return None
    return registry.push(archive_path, registry_address, repository, tag)


def build_and_push(
        datastores: Iterable[tuple[str, str]], push_to: str,
        pull_from: str | None = None, *,
        source: 'trove_source.TroveSource | None' = None,
        progress: Callable[[str], None] | None = None) -> list[results.Row]:
    """Each of ``datastores``' [(name, version)] backup image built (or
    found up to date) with ``source``'s backup/ code and pushed to the
    registry at ``push_to`` unless it holds that image already; [Row],
    each naming the image as guests pull it (from ``pull_from``, default
    ``push_to``).  Trove's agent looks a backup image up in its registry
    before every backup and restore: an embedded copy is not enough."""
    from trovestack.cloud import registry

    rows = []
    for name, version in dict.fromkeys(datastores):
        image = build_backup(name, version, source=source, progress=progress)
        pushed = push_unless_there(image.path, push_to, image.repository,
                                   image.tag)
        rows.append(results.Row(
            'backup-image', registry.image_reference(
                pull_from or push_to, image.repository, image.tag),
            results.CREATED if pushed else results.UNCHANGED,
            f'{image.strategy}, backup/ of {image.trove}'))
    return rows
