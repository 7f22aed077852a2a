"""The environment a Trove source tree runs in (``cloud up --trove-source``).

The project venv stays as it is (trovestack and the tests run from it).  A
tree gets a small environment of its own under the state directory,
``<state>/trove-env/<key>/``: a venv without pip, of the venv's base
interpreter, that sees the project venv's packages behind its own (a
``.pth`` file adds the venv's site-packages and puts setuptools' editable
finders first, so the tree's ``trove`` wins over the venv's release), into
which the venv's pip installs the tree editable, resolved against the
project's constraints (their ``trove`` line left out).  pip sees the venv's
packages as installed and adds only what the tree needs beyond them; it
never removes one of them ("outside environment").

The key is the tree's path and its packaging files (requirements.txt,
setup.cfg, pyproject.toml) with the constraints and the interpreter: a
change of code needs no new environment (the install is editable), a
change of requirements makes a new one beside the old, which is removed
once the cloud runs the new one.
"""

import dataclasses
import hashlib
import importlib.metadata
import importlib.util
import json
import logging
import os
import pathlib
import re
import shutil
import site
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Iterable

from packaging import requirements as requirements_mod
from packaging import utils as packaging_utils

from trovestack.cloud import LocalCloudError
from trovestack.cloud import layout as layout_mod
from trovestack.common import files

try:
    import tomllib
except ImportError:   # Python 3.10: pip builds the tree in isolation
    tomllib = None  # type: ignore[assignment]

LOG = logging.getLogger(__name__)

ENVS = 'trove-env'
# Written last into an environment: it is whole (what it holds, for people).
COMPLETE = 'trovestack-env.json'
# Sorts after pip's ``__editable__.*.pth`` files, which Python runs first.
PTH = 'zz-trovestack-venv.pth'
MODULE = '_trovestack_trove_env'
INSTALL_LOG = 'trove-env.log'
PACKAGING_FILES = ('requirements.txt', 'setup.cfg', 'pyproject.toml')
DIST = 'trove'
# setuptools builds editable wheels by itself from 70.1 on (no ``wheel``).
BUILD_SETUPTOOLS = 'setuptools>=70.1'
PIP_TIMEOUT = 900

MODULE_TEXT = '''\
"""Made by trovestack (trovestack.cloud.trove_env): this environment sees
the project venv's packages behind its own, and the editable installs'
finders come before the path finder, so the Trove tree installed here wins
over the release in the venv."""

import site
import sys

VENV_SITE_PACKAGES = {paths!r}


def install():
    for path in VENV_SITE_PACKAGES:
        site.addsitedir(path)
    editable = [finder for finder in sys.meta_path
                if getattr(finder, '__module__', '').startswith(
                    '__editable__')]
    sys.meta_path[:] = editable + [finder for finder in sys.meta_path
                                   if finder not in editable]
'''


class RequirementError(LocalCloudError):
    """pip could not install what the tree needs (one line naming it)."""


@dataclasses.dataclass(frozen=True)
class Runtime:
    """Where Trove's programs come from: an interpreter and the directory
    of its console scripts (the venv's, or a tree's environment)."""

    python: str
    bin_dir: str
    # Where a tree's bytecode goes (None: beside the sources, as usual).
    pycache: str | None = None

    def script(self, name: str) -> str:
        return str(pathlib.Path(self.bin_dir, name))

    def env(self) -> dict:
        """Environment variables of the programs run from it: a tree's
        bytecode is kept in its environment, not in the developer's tree,
        and written even where PYTHONDONTWRITEBYTECODE is set (the venv's
        release has its bytecode from pip; without it every start of a
        Trove service compiled the whole tree again: 1 s of CPU more per
        service, measured)."""
        if self.pycache is None:
            return {}
        return {'PYTHONDONTWRITEBYTECODE': '',
                'PYTHONPYCACHEPREFIX': self.pycache}


@dataclasses.dataclass(frozen=True)
class TroveEnv:
    """One tree's environment (whole: made by :func:`ensure`)."""

    root: pathlib.Path
    key: str
    tree: str

    @property
    def runtime(self) -> Runtime:
        return Runtime(str(self.root / 'bin' / 'python'),
                       str(self.root / 'bin'), str(self.root / 'pycache'))


@dataclasses.dataclass(frozen=True)
class Ensured:
    """What :func:`ensure` did: the environment, whether it was made now,
    and how long that took."""

    env: TroveEnv
    created: bool
    seconds: float = 0.0


def venv_runtime() -> Runtime:
    """trovestack's own interpreter (the release installed beside it)."""
    return Runtime(sys.executable, str(pathlib.Path(sys.executable).parent))


def envs_dir(layout: layout_mod.Layout) -> pathlib.Path:
    return layout.root / ENVS


def env_of(layout: layout_mod.Layout, key: str) -> TroveEnv | None:
    """The whole environment ``key`` of the cloud, or None."""
    root = envs_dir(layout) / key
    try:
        record = json.loads((root / COMPLETE).read_text())
    except (OSError, ValueError):
        return None
    return TroveEnv(root, key, record.get('tree', ''))


def runtime_of(layout: layout_mod.Layout,
               state: layout_mod.CloudState | None) -> Runtime:
    """Where the cloud of ``state`` runs Trove from: its tree's
    environment when one is recorded, else the venv."""
    key = getattr(state, 'trove_env', None) if state is not None else None
    if key:
        return TroveEnv(envs_dir(layout) / key, key, '').runtime
    return venv_runtime()


# ------------------------------------------------------------------ keys
def project_constraints() -> pathlib.Path | None:
    """The project's constraints.txt (beside trovestack's package in a
    checkout), or None."""
    path = pathlib.Path(__file__).resolve().parents[2] / 'constraints.txt'
    return path if path.is_file() else None


def constraints_text() -> str:
    """The project's constraints without Trove's own pin (the tree is
    Trove); from the venv's installed distributions when the project has
    no constraints.txt."""
    path = project_constraints()
    if path is not None:
        lines = path.read_text().splitlines()
    else:
        lines = sorted(f'{dist.metadata["Name"]}=={dist.version}'
                       for dist in importlib.metadata.distributions()
                       if dist.metadata['Name'])
    kept = []
    for line in lines:
        name = re.split(r'[\s=<>!~;\[@]', line.strip(), maxsplit=1)[0]
        if name and packaging_utils.canonicalize_name(name) == DIST:
            continue
        kept.append(line)
    return '\n'.join(kept) + '\n'


def key_of(tree: pathlib.Path | str) -> str:
    """The environment key of a tree: equal for trees that need the same
    installation (its path and packaging files, the constraints, this
    interpreter)."""
    tree = pathlib.Path(tree)
    digest = hashlib.sha256()
    for part in (str(tree), sys.version, sys.executable,
                 constraints_text()):
        digest.update(part.encode() + b'\0')
    for name in PACKAGING_FILES:
        try:
            digest.update(name.encode() + b'\0' + (tree / name).read_bytes())
        except OSError:
            digest.update(name.encode() + b'\0-\0')
    return digest.hexdigest()[:16]


def code_digest(tree: pathlib.Path | str) -> str:
    """A digest of the tree's Python package (what a restart picks up);
    about 30 ms for Trove's."""
    return files.tree_digest([pathlib.Path(tree) / DIST],
                             skip_dirs=('__pycache__', '*.egg-info'))


def migrations_digest(tree: pathlib.Path | str | None = None) -> str:
    """A digest of Trove's database code (models and alembic migrations)
    of ``tree``, or of the release in the venv when None: when it changed,
    Trove's ``db_sync`` runs before its services start."""
    if tree is not None:
        package = pathlib.Path(tree) / DIST
    else:
        spec = importlib.util.find_spec(DIST)
        if spec is None or not spec.origin:
            return ''
        package = pathlib.Path(spec.origin).parent
    return files.tree_digest([package / 'db'],
                             skip_dirs=('__pycache__',))


# --------------------------------------------------------------- ensure
def ensure(layout: layout_mod.Layout, tree: pathlib.Path | str,
           log_path: pathlib.Path | str | None = None) -> Ensured:
    """The environment of ``tree`` (an absolute path of a checked Trove
    tree), made when the cloud has none for its key.  On failure nothing
    of the new environment is left and :class:`RequirementError` (or
    LocalCloudError) names what pip could not install and its log."""
    tree = pathlib.Path(tree)
    key = key_of(tree)
    existing = env_of(layout, key)
    if existing is not None:
        return Ensured(existing, created=False)
    parent = envs_dir(layout)
    parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    log_path = pathlib.Path(log_path or layout.root / 'logs' / INSTALL_LOG)
    log_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with files.exclusive_lock(parent / '.lock'):
        existing = env_of(layout, key)
        if existing is not None:
            return Ensured(existing, created=False)
        began = time.monotonic()
        root = parent / key
        shutil.rmtree(root, ignore_errors=True)   # a partial one
        try:
            _create(root)
            _install(root, tree, log_path)
            files.write_atomic(root / COMPLETE, json.dumps(
                {'tree': str(tree), 'key': key,
                 'python': sys.version.split()[0]}, indent=2))
        except BaseException:
            shutil.rmtree(root, ignore_errors=True)
            raise
        seconds = time.monotonic() - began
        LOG.info('Trove tree %s installed in %s in %.1f s', tree, root,
                 seconds)
        return Ensured(TroveEnv(root, key, str(tree)), True, seconds)


def remove_stale(layout: layout_mod.Layout, keep: Iterable[str]) -> list[str]:
    """Remove the cloud's environments other than ``keep`` (keys); the
    keys removed."""
    keep = set(keep)
    removed: list[str] = []
    parent = envs_dir(layout)
    if not parent.is_dir():
        return removed
    with files.exclusive_lock(parent / '.lock'):
        for entry in sorted(parent.iterdir()):
            if entry.is_dir() and entry.name not in keep:
                shutil.rmtree(entry, ignore_errors=True)
                removed.append(entry.name)
    return removed


def _base_python() -> str:
    return getattr(sys, '_base_executable', None) or sys.executable


def venv_site_packages() -> list[str]:
    """The running venv's site-packages directories."""
    seen = []
    for path in site.getsitepackages():
        if os.path.isdir(path) and path not in seen:
            seen.append(path)
    return seen


def site_packages(root: pathlib.Path | str) -> pathlib.Path:
    """The site-packages of an environment made by this interpreter."""
    return pathlib.Path(sysconfig.get_path(
        'purelib', vars={'base': str(root), 'platbase': str(root)}))


def _create(root: pathlib.Path) -> None:
    result = subprocess.run(
        [_base_python(), '-m', 'venv', '--without-pip', str(root)],
        capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        last = (result.stderr or result.stdout).strip().splitlines()
        raise LocalCloudError(
            f'{_base_python()} -m venv {root} failed: '
            f'{last[-1] if last else result.returncode}')
    target = site_packages(root)
    target.mkdir(parents=True, exist_ok=True)
    (target / f'{MODULE}.py').write_text(
        MODULE_TEXT.format(paths=venv_site_packages()))
    (target / PTH).write_text(f'import {MODULE}; {MODULE}.install()\n')
    (root / 'constraints.txt').write_text(constraints_text())


def pip_argv(root: pathlib.Path | str, tree: pathlib.Path | str,
             isolated: bool = False) -> list[str]:
    """The venv's pip installing ``tree`` editable into the environment
    ``root`` under the constraints kept there."""
    return [sys.executable, '-m', 'pip', '--python',
            str(pathlib.Path(root, 'bin', 'python')), 'install',
            '--disable-pip-version-check', '--no-input',
            *([] if isolated else ['--no-build-isolation']),
            '-c', str(pathlib.Path(root, 'constraints.txt')),
            '-e', str(tree)]


def _install(root: pathlib.Path, tree: pathlib.Path | str,
             log_path: pathlib.Path) -> None:
    tools = build_tools(tree, log_path)
    env = dict(os.environ)
    env.pop('PYTHONPATH', None)
    if tools is not None:
        env['PYTHONPATH'] = str(tools)
    argv = pip_argv(root, tree, isolated=tools is None)
    with open(log_path, 'a') as log:
        log.write(f'\n=== {time.strftime("%Y-%m-%d %H:%M:%S")} '
                  f'{" ".join(argv)}\n')
        log.flush()
        began = len(pathlib.Path(log_path).read_bytes())
        try:
            result = subprocess.run(argv, stdout=log,
                                    stderr=subprocess.STDOUT, env=env,
                                    stdin=subprocess.DEVNULL,
                                    timeout=PIP_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise LocalCloudError(
                f'pip took longer than {PIP_TIMEOUT} s to install the Trove '
                f'tree {tree}; see {log_path}') from None
    if result.returncode == 0:
        return
    with open(log_path, 'rb') as log:
        log.seek(began)
        output = log.read().decode(errors='replace')
    raise RequirementError(install_error(tree, output, log_path))


def install_error(tree: pathlib.Path | str, output: str,
                  log_path: pathlib.Path | str) -> str:
    """One line from pip's output: which requirement of the tree it could
    not meet, and where its whole log is."""
    what = failed_requirement(output)
    if what:
        return (f'the Trove tree {tree} needs {what}; '
                f'pip\'s log: {log_path}')
    errors = [line[len('ERROR: '):].strip()
              for line in output.splitlines() if line.startswith('ERROR: ')]
    last = errors[-1] if errors else (output.strip().splitlines() or
                                      ['no output'])[-1].strip()
    return (f'pip could not install the Trove tree {tree}: {last}; '
            f'pip\'s log: {log_path}')


def failed_requirement(output: str) -> str | None:
    """The requirement pip could not meet, said for people: one that no
    index has (``X>=1, which no package index offers``) or one in conflict
    with a pin (``X>=99, but the constraints pin X==1.0``); None when the
    output shows neither."""
    found = re.search(r'No matching distribution found for (\S+)', output)
    if found:
        return f'{found.group(1)}, which no package index offers'
    found = re.search(r'Could not find a version that satisfies the '
                      r'requirement (\S+)', output)
    if found:
        return f'{found.group(1)}, which no package index offers'
    return _conflict(output)


def _conflict(output: str) -> str | None:
    if 'The conflict is caused by:' not in output:
        return None
    block = output.split('The conflict is caused by:', 1)[1]
    lines = []
    for line in block.splitlines():
        if line.strip():
            lines.append(line.strip())
        elif lines:
            break
    pins = {}
    wants = []
    for line in lines:
        pinned = re.match(r'The user requested \(constraint\) (\S+)', line)
        depends = re.match(r'(\S+) \S+ depends on (.+)$', line)
        try:
            if pinned:
                req = requirements_mod.Requirement(pinned.group(1))
                pins[packaging_utils.canonicalize_name(req.name)] = req
            elif depends:
                wants.append((depends.group(1), requirements_mod.Requirement(
                    depends.group(2))))
        except requirements_mod.InvalidRequirement:
            continue
    for _who, want in wants:
        pin = pins.get(packaging_utils.canonicalize_name(want.name))
        if pin is None:
            continue
        versions = [spec.version for spec in pin.specifier
                    if spec.operator in ('==', '===')]
        if versions and not want.specifier.contains(versions[0],
                                                    prereleases=True):
            return f'{want}, but the constraints pin {pin}'
    if wants:
        return (f'{"; ".join(str(want) for _, want in wants)} '
                f'(conflicting requirements)')
    return None


# ------------------------------------------------------- build tools
def build_requires(tree: pathlib.Path | str) -> list[str] | None:
    """The tree's ``[build-system] requires``, or None without a
    pyproject.toml saying so."""
    if tomllib is None:
        return None
    try:
        data = tomllib.loads((pathlib.Path(tree) / 'pyproject.toml')
                            .read_text())
    except (OSError, tomllib.TOMLDecodeError):
        return None
    requires = data.get('build-system', {}).get('requires')
    return list(requires) if isinstance(requires, list) else None


def build_tools(
        tree: pathlib.Path | str,
        log_path: pathlib.Path | str | None = None) -> pathlib.Path | None:
    """A directory holding the tree's build requirements (and a setuptools
    that builds editable wheels alone), kept in the user's cache and made
    once per set of requirements: with it on PYTHONPATH pip builds the
    tree without a fresh isolated build environment each time (~11 s
    instead of ~19 s here).  None when it cannot be made (pip then builds
    in isolation)."""
    requires = build_requires(tree)
    if requires is None:
        return None
    wanted = sorted({*requires, BUILD_SETUPTOOLS})
    key = hashlib.sha256('\0'.join(
        [sys.version, *wanted]).encode()).hexdigest()[:16]
    dest = files.cache_dir('trovestack', 'trove-build-tools', key)
    if (dest / COMPLETE).is_file():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    work = pathlib.Path(tempfile.mkdtemp(dir=dest.parent, prefix='.new-'))
    argv = [sys.executable, '-m', 'pip', 'install',
            '--disable-pip-version-check', '--no-input', '--target',
            str(work), *wanted]
    env = dict(os.environ)
    env.pop('PYTHONPATH', None)
    try:
        with open(log_path or os.devnull, 'a') as log:
            log.write(f'\n=== {" ".join(argv)}\n')
            log.flush()
            result = subprocess.run(argv, stdout=log,
                                    stderr=subprocess.STDOUT, env=env,
                                    stdin=subprocess.DEVNULL,
                                    timeout=PIP_TIMEOUT)
        if result.returncode != 0:
            return None
        (work / COMPLETE).write_text(json.dumps({'requires': wanted}))
        if dest.is_dir() and not (dest / COMPLETE).is_file():
            shutil.rmtree(dest, ignore_errors=True)   # a partial one
        try:
            os.rename(work, dest)
        except OSError:
            if not (dest / COMPLETE).is_file():
                return None
        return dest
    except (OSError, subprocess.SubprocessError):
        return None
    finally:
        shutil.rmtree(work, ignore_errors=True)
