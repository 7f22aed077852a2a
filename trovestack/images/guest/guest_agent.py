"""Prepare the guest agent wheelhouse on the host, cached between builds.

The image installs the guest agent offline from this directory: the wheels
of the libraries it imports (``data/guest-agent-requirements.txt``) plus a
wheel of the Trove distribution itself, from PyPI, a git repository or a
local source tree.
"""

import contextlib
import hashlib
import logging
import os
import pathlib
import platform
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from collections.abc import Sequence
from typing import IO
from typing import Any

from trovestack.common import files
from trovestack.images.guest import errors

LOG = logging.getLogger(__name__)

PIP, GIT, LOCAL = 'pip', 'git', 'local'
SOURCES = (PIP, GIT, LOCAL)
DEFAULT_PIP_REF = '26.0.0'
DEFAULT_GIT_URL = 'https://opendev.org/openstack/trove'
DEFAULT_GIT_REF = 'master'
REQUIREMENTS = (pathlib.Path(__file__).parent / 'data'
                / 'guest-agent-requirements.txt')
_SKIPPED_DIRS = ('.git', '.tox', '.venv', '__pycache__', 'build', 'dist',
                 '*.egg-info')


def _git_commit(url: pathlib.Path | str, ref: str) -> str:
    try:
        out = subprocess.run(['git', 'ls-remote', url, ref], check=True,
                             capture_output=True, text=True,
                             timeout=120).stdout
    except (OSError, subprocess.SubprocessError) as e:
        raise errors.BuildError(
            'Cannot reach guest agent git repository %s: %s' % (url, e)
        ) from e
    if not out.split():
        if len(ref) == 40:
            return ref
        raise errors.BuildError('No ref %s in guest agent git repository %s'
                                % (ref, url))
    return out.split()[0]


def source_identity(source: str, ref: str | None = None,
                    path: pathlib.Path | str | None = None) -> str:
    """A string that changes exactly when the agent code would change."""
    if source == PIP:
        return 'pip:trove==%s' % (ref or DEFAULT_PIP_REF)
    if source == GIT:
        url = path or DEFAULT_GIT_URL
        return 'git:%s@%s' % (url, _git_commit(url, ref or DEFAULT_GIT_REF))
    if source == LOCAL:
        if not path or not pathlib.Path(path, 'setup.cfg').is_file():
            raise errors.BuildError(
                '--guest-agent-path must name a Trove source tree (with '
                'setup.cfg) for --guest-agent-source local')
        return 'local:%s' % files.tree_digest([path],
                                              skip_dirs=_SKIPPED_DIRS)
    raise errors.BuildError('Unknown guest agent source %s; valid: %s'
                            % (source, ', '.join(SOURCES)))


def wheelhouse_key(identity: str, python_version: str,
                   machine: str | None = None) -> str:
    parts = [identity, python_version, REQUIREMENTS.read_text()]
    if machine and machine != platform.machine():
        parts.append(machine)  # host-machine keys stay as they always were
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode() + b'\0')
    return digest.hexdigest()[:16]


def _pip(args: Sequence[str | os.PathLike[str]], log: IO[str]) -> None:
    cmd = [sys.executable, '-m', 'pip', '--disable-pip-version-check', *args]
    LOG.debug('Running %s', cmd)
    result = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT)
    if result.returncode != 0:
        raise errors.BuildError('pip failed preparing the guest agent '
                                'wheelhouse (see %s)' % log.name)


def _target_args(python_version: str, machine: str | None = None) -> list[str]:
    """pip options for wheels of another Python or machine than the host's
    (``machine`` as platform.machine() spells it: x86_64, aarch64...)."""
    host = '%d.%d' % sys.version_info[:2]
    machine = machine or platform.machine()
    if python_version == host and machine == platform.machine():
        return []
    return ['--only-binary=:all:', '--python-version', python_version,
            '--implementation', 'cp', '--platform', 'manylinux2014_' + machine,
            '--platform', 'manylinux_2_28_' + machine, '--platform', 'any']


def _agent_wheel(source: str, ref: str | None, path: pathlib.Path | str | None,
                 wheel_dir: pathlib.Path, log: IO[str], python_version: str,
                 machine: str | None) -> str:
    if source == PIP:
        _pip(['download', '--no-deps', '--only-binary=:all:', '--dest',
              str(wheel_dir), 'trove==%s' % (ref or DEFAULT_PIP_REF)]
             + _target_args(python_version, machine)[1:], log)
        return 'trove==%s\n' % (ref or DEFAULT_PIP_REF)
    with tempfile.TemporaryDirectory(prefix='trove-agent-src-') as tmp:
        tree = path
        if source == GIT:
            tree = os.path.join(tmp, 'trove')
            result = subprocess.run(
                ['git', 'clone', '--quiet', '--branch', ref or DEFAULT_GIT_REF,
                 path or DEFAULT_GIT_URL, tree], stdout=log,
                stderr=subprocess.STDOUT)
            if result.returncode != 0:
                raise errors.BuildError('git clone of the guest agent failed '
                                        '(see %s)' % log.name)
        # a local source has its path
        _pip(['wheel', '--no-deps', '--wheel-dir', str(wheel_dir),
              tree], log)  # type: ignore[list-item]
    return 'trove\n'


def prepare_agent(source: str, ref: str | None,
                  path: pathlib.Path | str | None, cache_dir: pathlib.Path,
                  python_version: str, log: IO[str],
                  machine: str | None = None) -> pathlib.Path:
    """A directory with the agent's own wheel (the trove distribution)
    and ``agent.txt``, built once per agent identity: all an agent-only
    rebuild needs (the libraries are in the image already)."""
    identity = source_identity(source, ref, path)
    target = pathlib.Path(cache_dir, 'agent-wheels',
                          wheelhouse_key(identity, python_version, machine))

    def make(partial: pathlib.Path) -> None:
        agent = _agent_wheel(source, ref, path, partial, log, python_version,
                             machine)
        (partial / 'agent.txt').write_text(agent)
    return _made_once(target, make)


def agent_wheel(wheelhouse: pathlib.Path) -> pathlib.Path:
    """The trove wheel in a wheelhouse (prepare or prepare_agent)."""
    found = sorted(pathlib.Path(wheelhouse).glob('trove-*.whl'))
    if len(found) != 1:
        raise errors.BuildError('expected one trove wheel in %s, found %d'
                                % (wheelhouse, len(found)))
    return found[0]


def wheel_version(wheel: pathlib.Path | str) -> str:
    """The version in a wheel's file name (trove-26.0.0-py3-none-any)."""
    return pathlib.Path(wheel).name.split('-')[1]


def check_tree(path: pathlib.Path | str) -> None:
    """A one-line error when the local tree's agent does not compile (a
    syntax error would otherwise show in the image build's last minutes,
    or only in a booted guest)."""
    from trovestack.cloud import trove_source

    try:
        trove_source.check_compiles(path)
    except trove_source.LocalCloudError as exc:
        raise errors.BuildError('guest agent source: %s' % exc) from None


def provenance(source: str, ref: str | None, path: pathlib.Path | str | None,
               identity: str,
               wheelhouse: pathlib.Path | None = None) -> dict[str, Any]:
    """Where the image's guest agent comes from, for the sidecar and
    Glance: ``source`` in TroveSource.identity() form (``release:26.0.0``,
    ``tree:<path>@<commit>[+dirty]``, ``tree:<path>``) or
    ``git:<url>@<commit>``, ``version`` and, for a local tree, its
    ``digest`` (the content the build hash covers), ``path``, ``commit``
    and ``dirty``."""
    from trovestack.cloud import trove_source

    version = None
    if wheelhouse is not None:
        with contextlib.suppress(errors.BuildError):
            version = wheel_version(agent_wheel(wheelhouse))
    if source == PIP:
        version = ref or DEFAULT_PIP_REF
        return {'source': 'release:%s' % version, 'version': version}
    if source == GIT:
        return {'source': identity, 'version': version or ref
                or DEFAULT_GIT_REF}
    try:
        # a local source has its path
        tree = trove_source.of_tree(path)  # type: ignore[arg-type]
    except trove_source.LocalCloudError as exc:
        raise errors.BuildError('guest agent source: %s' % exc) from None
    return {'source': tree.identity(), 'version': version or tree.version,
            'digest': identity.split(':', 1)[1], 'path': tree.path,
            'commit': tree.commit or '', 'dirty': tree.dirty}


def _made_once(target: pathlib.Path,
               make: Callable[[pathlib.Path], None]) -> pathlib.Path:
    """``target``, made by ``make(partial_dir)`` unless it exists (a
    directory with ``agent.txt`` or ``requirements.txt``), then renamed
    into place: never half a wheelhouse."""
    if (target / 'agent.txt').is_file() or (
            target / 'requirements.txt').is_file():
        LOG.debug('Reusing %s', target)
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = pathlib.Path(tempfile.mkdtemp(prefix='.partial-',
                                            dir=target.parent))
    try:
        make(partial)
        partial.rename(target)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return target


def prepare_requirements(cache_dir: pathlib.Path, python_version: str,
                         log: IO[str],
                         machine: str | None = None) -> pathlib.Path:
    """The wheels of the agent's libraries (the requirement list), for
    the guest's Python and machine; shared by every agent source."""
    target = pathlib.Path(cache_dir, 'requirement-wheels', wheelhouse_key(
        'requirements', python_version, machine))
    pip_target = _target_args(python_version, machine)

    def make(partial: pathlib.Path) -> None:
        _pip(['wheel', '--wheel-dir', str(partial), '--requirement',
              str(REQUIREMENTS)] if not pip_target else
             ['download', '--dest', str(partial), '--requirement',
              str(REQUIREMENTS)] + pip_target, log)
        shutil.copy(REQUIREMENTS, partial / 'requirements.txt')
    return _made_once(target, make)


def _link_all(source: pathlib.Path | str, dest: pathlib.Path) -> None:
    for item in pathlib.Path(source).iterdir():
        try:
            os.link(item, dest / item.name)
        except OSError:
            shutil.copy(item, dest / item.name)


def prepare(source: str, ref: str | None, path: pathlib.Path | str | None,
            cache_dir: pathlib.Path, python_version: str, log: IO[str],
            machine: str | None = None) -> pathlib.Path:
    """The wheelhouse directory for this agent source, built once, for the
    guest's Python and machine (default: the host's): the library wheels
    (prepare_requirements) and the agent's own (prepare_agent)."""
    identity = source_identity(source, ref, path)
    target = pathlib.Path(cache_dir, 'wheelhouse',
                          wheelhouse_key(identity, python_version, machine))

    def make(partial: pathlib.Path) -> None:
        _link_all(prepare_requirements(cache_dir, python_version, log,
                                       machine), partial)
        _link_all(prepare_agent(source, ref, path, cache_dir,
                                python_version, log, machine), partial)
    return _made_once(target, make)
