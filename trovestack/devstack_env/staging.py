"""Everything stack.sh needs offline, made once per content and cached.

Each artifact lives in the cache as ``<kind>-<key>`` where the key is a
digest of what it is made from; a ``<kind>-<key>.json`` record written
after the artifact is complete says it may be used.  A build holds the
key's lock (another run waits, then reuses it), works in a temporary
directory beside it and renames it into place, so a run killed half-way
leaves only a temporary directory that the next build of that key
removes (with anything still mounted below it).

The network is used here only, on the host: Debian's mirror (mmdebstrap,
apt-get --download-only) and PyPI (pip download/wheel).
"""

import concurrent.futures
import dataclasses
import email.utils
import gzip
import hashlib
import json
import logging
import os
import pathlib
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any

import psutil

from trovestack.common import files
from trovestack.common.errors import UserError
from trovestack.devstack_env import cache
from trovestack.devstack_env import constraints
from trovestack.devstack_env import layout
from trovestack.devstack_env import packages

LOG = logging.getLogger(__name__)

# Bump when the way an artifact is made changes (the key covers inputs).
FORMAT = 1
SUITE = 'bookworm'
MIRROR = 'http://deb.debian.org/debian'
SECURITY_MIRROR = 'http://deb.debian.org/debian-security'
KEYRING = '/usr/share/keyrings/debian-archive-keyring.gpg'
# Where the container sees the repository and the wheelhouse.
APT_MOUNT = '/srv/trovestack/apt'
WHEEL_MOUNT = '/srv/trovestack/wheels'
STACK_HOME = '/opt/stack'

Progress = Callable[[str], None]


class StagingError(UserError):
    """A staging step failed (one line: the step and its error)."""


@dataclasses.dataclass(frozen=True)
class Artifact:
    """One staged artifact: where it is and whether this run built it."""

    kind: str
    key: str
    path: pathlib.Path
    built: bool
    seconds: float
    detail: str = ''


@dataclasses.dataclass(frozen=True)
class Project:
    """An OpenStack repository devstack clones, made from a PyPI sdist."""

    repo: str           # the directory under /opt/stack
    dist: str           # its PyPI name
    version: str


@dataclasses.dataclass(frozen=True)
class RootfsSpec:
    """A Debian rootfs made by mmdebstrap, then customized."""

    include: tuple[str, ...]
    customize: str      # a sh script run on the host with the rootfs as $1
    suite: str = SUITE
    variant: str = 'apt'

    def key(self) -> str:
        return digest({'format': FORMAT, 'suite': self.suite,
                       'variant': self.variant,
                       'include': sorted(self.include),
                       'customize': self.customize,
                       'sources': sources_lines(self.suite)})


@dataclasses.dataclass(frozen=True)
class Staged:
    """What an environment boots and stack.sh uses."""

    rootfs: Artifact
    repo: Artifact
    wheels: Artifact
    sources: Artifact
    requirements: Artifact

    def artifacts(self) -> list[Artifact]:
        return [self.rootfs, self.repo, self.wheels, self.sources,
                self.requirements]


def digest(value: Any) -> str:
    """sha256 of a JSON-able value (keys sorted)."""
    text = json.dumps(value, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def sources_lines(suite: str = SUITE) -> list[str]:
    """The Debian sources staging reads: the suite, its updates, security
    and backports (devstack takes qemu and libvirt from bookworm's)."""
    return [f'deb [signed-by={KEYRING}] {MIRROR} {suite} main',
            f'deb [signed-by={KEYRING}] {MIRROR} {suite}-updates main',
            f'deb [signed-by={KEYRING}] {SECURITY_MIRROR} '
            f'{suite}-security main',
            f'deb [signed-by={KEYRING}] {MIRROR} {suite}-backports main']


# The pin functions-libvirt writes on bookworm (enable_debian_12_backports):
# the same choice of versions when the repository is resolved.
BACKPORTS_PIN = """Package: qemu* libvirt* ovmf* seabios* opensbi
Pin: release n={suite}-backports
Pin-Priority: 990
"""


# -- the cache -----------------------------------------------------------


def artifact_path(kind: str, key: str,
                  root: pathlib.Path | None = None) -> pathlib.Path:
    return (root or layout.cache_root()) / f'{kind}-{key[:20]}'


def _owner_tag() -> str:
    pid = os.getpid()
    return f'{pid}-{int(psutil.Process(pid).create_time())}'


def cached(kind: str, key: str, build: Callable[[pathlib.Path], str],
           *, root: pathlib.Path | None = None,
           progress: Progress | None = None) -> Artifact:
    """The artifact ``kind``/``key``, built by ``build(tmpdir)`` (which
    returns a detail line) unless a complete one is in the cache."""
    path = artifact_path(kind, key, root)
    found = _complete(path, key)
    if found is not None:
        cache.mark_used(path)
        return Artifact(kind, key, path, False, 0.0, found)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = cache.lock_path(path)

    def waiting() -> None:
        _say(progress, f'{kind}: another run is making it, waiting')

    with files.exclusive_lock(lock, on_wait=waiting):
        found = _complete(path, key)
        if found is not None:
            cache.mark_used(path)
            return Artifact(kind, key, path, False, 0.0, found)
        _remove_leftovers(path)
        tmp = path.with_name(f'.{path.name}.tmp-{_owner_tag()}')
        tmp.mkdir()
        started = time.monotonic()
        _say(progress, f'{kind}: making {path.name}')
        try:
            detail = build(tmp)
            os.replace(tmp, path)
        except BaseException:
            cache.discard(tmp)
            raise
        seconds = time.monotonic() - started
        files.write_atomic(cache.record_path(path), json.dumps(
            {'key': key, 'kind': kind, 'seconds': round(seconds, 1),
             'detail': detail}, indent=2))
        _say(progress, f'{kind}: made in {seconds:.0f} s')
        return Artifact(kind, key, path, True, seconds, detail)


def _complete(path: pathlib.Path, key: str) -> str | None:
    """The record's detail when ``path`` is a complete build of ``key``."""
    try:
        record = json.loads(cache.record_path(path).read_text())
    except (OSError, ValueError):
        return None
    if record.get('key') != key or not path.is_dir():
        return None
    return str(record.get('detail', ''))


def _remove_leftovers(path: pathlib.Path) -> None:
    """Under the key's lock: what an interrupted build of it left (its
    temporary directories, an artifact renamed but never recorded)."""
    for tmp in path.parent.glob(f'.{path.name}.tmp-*'):
        cache.discard(tmp)
    if path.exists():
        cache.discard(path)
    cache.record_path(path).unlink(missing_ok=True)


def _say(progress: Progress | None, text: str) -> None:
    if progress is not None:
        progress(text)
    else:
        LOG.info('%s', text)


def _run(argv: Sequence[str], what: str, **kwargs: Any) -> str:
    """Run argv; its stdout, or StagingError naming ``what`` with the
    last lines of its output."""
    kwargs.setdefault('stdin', subprocess.DEVNULL)
    result = subprocess.run([str(a) for a in argv], capture_output=True,
                            text=True, **kwargs)
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
        raise StagingError(f'{what} failed (exit {result.returncode}): '
                           + ' | '.join(tail))
    return result.stdout


# -- rootfs --------------------------------------------------------------


def require_tools(*tools: str) -> None:
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        raise StagingError(
            f'missing {", ".join(missing)}: run tools/install-test-deps '
            '(as root)')


def build_rootfs(spec: RootfsSpec, *, root: pathlib.Path | None = None,
                 progress: Progress | None = None) -> Artifact:
    """A Debian rootfs directory (mmdebstrap, root mode), customized."""
    require_tools('mmdebstrap')
    if os.geteuid() != 0:
        raise StagingError('making a rootfs needs root')

    def build(tmp: pathlib.Path) -> str:
        # mmdebstrap wants an empty target: the hook lives beside it.
        with tempfile.NamedTemporaryFile('w', suffix='.sh',
                                         prefix='trovestack-rootfs-') as hook:
            hook.write(spec.customize)
            hook.flush()
            argv = ['mmdebstrap', '--mode=root', '--format=directory',
                    f'--variant={spec.variant}', '--components=main',
                    '--aptopt=APT::Install-Recommends "false"',
                    '--dpkgopt=force-unsafe-io',
                    '--include=' + ','.join(sorted(spec.include)),
                    f'--customize-hook=sh {shlex.quote(hook.name)} "$1"',
                    spec.suite, str(tmp), *sources_lines(spec.suite)]
            _run(argv, 'mmdebstrap')
        return f'{len(spec.include)} packages asked for'

    return cached('rootfs', spec.key(), build, root=root, progress=progress)


def customize_script(*, stack_user: bool, mask: Iterable[str] = ()) -> str:
    """The customize hook of a rootfs: offline apt and pip, the stack user
    (devstack's tools/create-stack-user.sh does the same), no getty."""
    lines = ['set -eu', 'root=$1']
    for unit in ('console-getty.service', 'getty@.service',
                 'systemd-networkd-wait-online.service', *mask):
        lines.append(f'ln -sf /dev/null "$root/etc/systemd/system/{unit}"')
    lines += [
        'rm -f "$root/etc/apt/sources.list"',
        'rm -f "$root"/etc/apt/sources.list.d/*',
        # functions-libvirt adds Debian's backports unless a source names
        # it: the local repository is all there is.
        'cat > "$root/etc/apt/sources.list.d/trovestack-local.list" <<EOF',
        '# bookworm-backports is not used: everything comes from the',
        '# local repository trovestack staged (no network in here).',
        f'deb [trusted=yes] file:{APT_MOUNT} ./',
        'EOF',
        'printf \'APT::Install-Recommends "false";\\n\' '
        '> "$root/etc/apt/apt.conf.d/90trovestack-no-recommends"',
        'cat > "$root/etc/pip.conf" <<EOF',
        '[global]',
        'no-index = true',
        f'find-links = {WHEEL_MOUNT}',
        'disable-pip-version-check = true',
        'EOF',
        'echo "nameserver 127.0.0.1" > "$root/etc/resolv.conf"',
    ]
    if stack_user:
        lines += [
            'if [ -f "$root/etc/locale.gen" ]; then',
            '  sed -i "s/^# *en_US.UTF-8/en_US.UTF-8/" "$root/etc/locale.gen"',
            '  chroot "$root" locale-gen >/dev/null',
            'fi',
            'chroot "$root" id stack >/dev/null 2>&1 || chroot "$root" '
            f'useradd --create-home --home-dir {STACK_HOME} '
            '--shell /bin/bash stack',
            f'chmod 755 "$root{STACK_HOME}"',
            'echo "stack ALL=(root) NOPASSWD:ALL" '
            '> "$root/etc/sudoers.d/50_stack_sh"',
            'chmod 440 "$root/etc/sudoers.d/50_stack_sh"',
        ]
    return '\n'.join(lines) + '\n'


def devstack_rootfs_spec() -> RootfsSpec:
    return RootfsSpec(include=tuple(packages.BASE_PACKAGES),
                      customize=customize_script(stack_user=True))


def small_rootfs_spec() -> RootfsSpec:
    """The smallest rootfs that boots systemd (the lifecycle test's)."""
    return RootfsSpec(include=('systemd', 'systemd-sysv', 'iproute2'),
                      customize=customize_script(stack_user=False))


# -- local apt repository -------------------------------------------------


def _apt_options(work: pathlib.Path, rootfs: pathlib.Path,
                 archives: pathlib.Path) -> list[str]:
    """apt-get options that make it resolve against the rootfs's installed
    packages, with its own lists, sources and download directory."""
    for sub in ('state/lists/partial', 'cache', 'parts',
                'preferences.d'):
        (work / sub).mkdir(parents=True, exist_ok=True)
    (archives / 'partial').mkdir(parents=True, exist_ok=True)
    (work / 'sources.list').write_text('\n'.join(sources_lines()) + '\n')
    (work / 'preferences').write_text(BACKPORTS_PIN.format(suite=SUITE))
    settings = {
        'Dir::State': work / 'state',
        'Dir::State::status': rootfs / 'var/lib/dpkg/status',
        'Dir::Cache': work / 'cache',
        'Dir::Cache::archives': archives,
        'Dir::Etc::SourceList': work / 'sources.list',
        'Dir::Etc::SourceParts': work / 'parts',
        'Dir::Etc::Preferences': work / 'preferences',
        'Dir::Etc::PreferencesParts': work / 'preferences.d',
        'APT::Install-Recommends': 'false',
        'APT::Sandbox::User': 'root',
        'APT::Architecture': 'amd64',
        'Debug::NoLocking': 'true',
    }
    options = []
    for name, value in settings.items():
        options += ['-o', f'{name}={value}']
    return options


def available(apt: Sequence[str], names: Iterable[str]) -> tuple[
        list[str], list[str]]:
    """(names apt can install, names it cannot) on the staged sources."""
    known = set(_run(['apt-cache', *apt, 'pkgnames'],
                     'apt-cache pkgnames').split())
    keep: list[str] = []
    drop: list[str] = []
    for name in names:
        if name in known:
            keep.append(name)
            continue
        probe = subprocess.run(['apt-get', *apt, '-s', '-q', 'install', name],
                               capture_output=True, stdin=subprocess.DEVNULL)
        (keep if probe.returncode == 0 else drop).append(name)
    return keep, drop


def build_repo(rootfs: Artifact, wanted: Sequence[str], *,
               root: pathlib.Path | None = None,
               progress: Progress | None = None) -> Artifact:
    """A flat apt repository with every package ``wanted`` needs beyond
    what ``rootfs`` has installed (dependencies resolved by apt)."""
    require_tools('apt-get', 'dpkg-scanpackages')
    key = digest({'format': FORMAT, 'rootfs': rootfs.key,
                  'wanted': sorted(wanted), 'sources': sources_lines(),
                  'pin': BACKPORTS_PIN})

    def build(tmp: pathlib.Path) -> str:
        with tempfile.TemporaryDirectory(prefix='trovestack-apt-') as work:
            apt = _apt_options(pathlib.Path(work), rootfs.path, tmp)
            _run(['apt-get', *apt, '-q', 'update'], 'apt-get update')
            keep, drop = available(apt, wanted)
            _run(['apt-get', *apt, '-q', '-y', '--download-only', 'install',
                  *keep], 'apt-get --download-only install')
        shutil.rmtree(tmp / 'partial', ignore_errors=True)
        (tmp / 'lock').unlink(missing_ok=True)
        write_index(tmp)
        verify_repo(tmp, rootfs.path, keep)
        debs = len(list(tmp.glob('*.deb')))
        files.write_atomic(tmp / 'packages.json', json.dumps(
            {'wanted': sorted(wanted), 'unavailable': sorted(drop),
             'debs': debs}, indent=2))
        detail = f'{debs} .deb files'
        if drop:
            detail += f'; not in {SUITE}: {" ".join(sorted(drop))}'
        return detail

    return cached('apt', key, build, root=root, progress=progress)


def write_index(repo: pathlib.Path) -> None:
    """Packages, Packages.gz and a Release file naming their digests: a
    flat repository apt reads as ``deb [trusted=yes] file:DIR ./``."""
    index = _run(['dpkg-scanpackages', '--multiversion', '.', '/dev/null'],
                 'dpkg-scanpackages', cwd=repo)
    (repo / 'Packages').write_text(index)
    (repo / 'Packages.gz').write_bytes(gzip.compress(index.encode(),
                                                     mtime=0))
    lines = ['Origin: trovestack', 'Label: trovestack-local',
             'Suite: trovestack-local', 'Codename: trovestack-local',
             'Architectures: amd64 all', 'Components: main',
             'Description: what stack.sh installs, staged for offline use',
             'Date: ' + email.utils.formatdate(usegmt=True),
             'SHA256:']
    for name in ('Packages', 'Packages.gz'):
        data = (repo / name).read_bytes()
        lines.append(f' {hashlib.sha256(data).hexdigest()} {len(data)} '
                     f'{name}')
    (repo / 'Release').write_text('\n'.join(lines) + '\n')


def verify_repo(repo: pathlib.Path, rootfs: pathlib.Path,
                names: Sequence[str]) -> None:
    """apt, given only ``repo`` and the rootfs's installed packages, can
    install every one of ``names`` (StagingError naming what it lacks)."""
    with tempfile.TemporaryDirectory(prefix='trovestack-apt-') as work:
        apt = _apt_options(pathlib.Path(work), rootfs,
                           pathlib.Path(work, 'archives'))
        pathlib.Path(work, 'sources.list').write_text(
            f'deb [trusted=yes] file:{repo} ./\n')
        pathlib.Path(work, 'preferences').write_text('')
        _run(['apt-get', *apt, '-q', 'update'], 'apt-get update (local)')
        _run(['apt-get', *apt, '-s', '-q', 'install', *names],
             'apt-get install from the local repository alone')


# -- OpenStack repositories from sdists -----------------------------------


def download_sdist(dist: str, version: str, *,
                   root: pathlib.Path | None = None) -> pathlib.Path:
    """The sdist of dist==version in the cache's sdists directory."""
    directory = (root or layout.cache_root()) / 'sdists'
    directory.mkdir(parents=True, exist_ok=True)
    found = _find_sdist(directory, dist, version)
    if found is not None:
        return found
    with files.exclusive_lock(directory / f'.{dist}.lock'):
        found = _find_sdist(directory, dist, version)
        if found is None:
            _run([sys.executable, '-m', 'pip', 'download', '--quiet',
                  '--no-deps', '--no-binary', ':all:', '--dest',
                  str(directory), f'{dist}=={version}'],
                 f'pip download {dist}=={version}', env=_pip_env())
            found = _find_sdist(directory, dist, version)
    if found is None:
        raise StagingError(f'pip download {dist}=={version} left no sdist '
                           f'in {directory}')
    return found


def _find_sdist(directory: pathlib.Path, dist: str,
                version: str) -> pathlib.Path | None:
    stems = {f'{dist}-{version}', f'{dist.replace("-", "_")}-{version}'}
    for path in directory.glob('*.tar.gz'):
        if path.name[:-len('.tar.gz')] in stems:
            return path
    return None


def _pip_env() -> dict[str, str]:
    env = dict(os.environ)
    # This machine's own pip settings (local mirrors, a global constraint)
    # stay; only the version check goes.
    env['PIP_DISABLE_PIP_VERSION_CHECK'] = '1'
    return env


# What pbr and pip write into a source tree when it is built (a wheel of
# the guest agent, devstack's pip install -e): untracked and ignored, as
# in a clone of the project's repository, so that building leaves the
# repository clean.  The sdist's own copies of AUTHORS and ChangeLog stay
# in the tree, not in the commit.
GENERATED = ('AUTHORS', 'ChangeLog', '*.egg-info/', 'build/', '.eggs/',
             '__pycache__/', '*.pyc')


def unpack_as_repo(sdist: pathlib.Path, target: pathlib.Path,
                   message: str) -> None:
    """The sdist's tree in ``target`` as a git repository of one commit
    (what a build generates ignored, see GENERATED)."""
    with tarfile.open(sdist) as archive:
        members = archive.getmembers()
        top = os.path.commonpath([m.name for m in members]).split('/')[0]
        with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
            archive.extractall(tmp, filter='data')
            os.replace(pathlib.Path(tmp, top), target)
    git = ['git', '-C', str(target), '-c', 'user.name=trovestack',
           '-c', 'user.email=trovestack@localhost',
           '-c', 'init.defaultBranch=master']
    _run([*git, 'init', '-q'], f'git init {target.name}')
    (target / '.git' / 'info').mkdir(exist_ok=True)
    (target / '.git' / 'info' / 'exclude').write_text(
        '# pbr and pip make these when the tree is built\n'
        + ''.join(f'{pattern}\n' for pattern in GENERATED))
    _run([*git, 'add', '-A', '.'], f'git add {target.name}')
    _run([*git, 'commit', '-q', '-m', message], f'git commit {target.name}')


def build_sources(projects: Sequence[Project], *,
                  root: pathlib.Path | None = None,
                  progress: Progress | None = None) -> Artifact:
    """One directory per project, each a one-commit git repository."""
    key = digest({'format': FORMAT, 'generated': GENERATED,
                  'projects': [dataclasses.astuple(p) for p in projects]})

    def build(tmp: pathlib.Path) -> str:
        for project in projects:
            sdist = download_sdist(project.dist, project.version, root=root)
            unpack_as_repo(sdist, tmp / project.repo,
                           f'{project.dist} {project.version} '
                           '(from its PyPI sdist)')
        return ', '.join(f'{p.repo} {p.version}' for p in projects)

    return cached('sources', key, build, root=root, progress=progress)


# -- wheelhouse and the requirements repository ---------------------------


# The container's Python is Debian's; wheels are chosen (and environment
# markers such as python_full_version evaluated) for the same one.
DEBIAN_PYTHON = '/usr/bin/python3'


def python_version(python: str = DEBIAN_PYTHON) -> str:
    """The full version of an interpreter (StagingError without one)."""
    if not os.access(python, os.X_OK):
        raise StagingError(f'{python} is missing: the wheelhouse is built '
                           'for the container\'s Python, Debian\'s python3')
    return _run([python, '-c', 'import platform; '
                 'print(platform.python_version())'],
                f'{python} --version').strip()


def rootfs_python(rootfs: pathlib.Path) -> str:
    """The upstream version of the rootfs's python3 package (3.11.2)."""
    status = (rootfs / 'var/lib/dpkg/status').read_text()
    for block in status.split('\n\n'):
        fields = dict(line.split(': ', 1) for line in block.splitlines()
                      if ': ' in line and not line.startswith(' '))
        if fields.get('Package') == 'python3-minimal':
            return fields.get('Version', '').split('-')[0]
    raise StagingError(f'no python3-minimal in {rootfs}')


def build_wheels(requirement_files: Sequence[pathlib.Path],
                 names: Sequence[str], constraints_file: pathlib.Path, *,
                 python: str = DEBIAN_PYTHON,
                 root: pathlib.Path | None = None,
                 progress: Progress | None = None) -> Artifact:
    """Wheels of everything the requirement files and ``names`` need,
    within ``constraints_file``, for the interpreter ``python`` (pip
    --python: markers and wheel tags are that Python's)."""
    version = python_version(python)
    inputs = {'format': FORMAT, 'names': sorted(names), 'python': version,
              'constraints': constraints_file.read_text(),
              'requirements': [p.read_text() for p in requirement_files]}
    key = digest(inputs)

    def build(tmp: pathlib.Path) -> str:
        argv = [sys.executable, '-m', 'pip', '--python', python, 'wheel',
                '--quiet', '--wheel-dir', str(tmp), '-c',
                str(constraints_file)]
        for path in requirement_files:
            argv += ['-r', str(path)]
        _run([*argv, *names], 'pip wheel', env=_pip_env())
        return f'{len(list(tmp.glob("*.whl")))} wheels for Python {version}'

    return cached('wheels', key, build, root=root, progress=progress)


def build_requirements(sdist: pathlib.Path, pins: Mapping[str, str],
                       wheels: Artifact, *,
                       root: pathlib.Path | None = None,
                       progress: Progress | None = None) -> Artifact:
    """openstack-requirements' sdist as a repository whose
    upper-constraints.txt and global-requirements.txt are ours."""
    built = constraints.wheel_pins(p.name for p in wheels.path.glob('*.whl'))
    key = digest({'format': FORMAT, 'sdist': sdist.name, 'pins': pins,
                  'wheels': wheels.key})

    def build(tmp: pathlib.Path) -> str:
        repo = tmp / 'requirements'
        with tarfile.open(sdist) as archive:
            archive.extractall(tmp / 'unpack', filter='data')
        (top,) = list((tmp / 'unpack').iterdir())
        os.replace(top, repo)
        shutil.rmtree(tmp / 'unpack')
        upper = constraints.upper_constraints(pins, built)
        (repo / 'upper-constraints.txt').write_text(upper)
        (repo / 'global-requirements.txt').write_text(
            constraints.global_requirements([*pins, *built]))
        git = ['git', '-C', str(repo), '-c', 'user.name=trovestack',
               '-c', 'user.email=trovestack@localhost',
               '-c', 'init.defaultBranch=master']
        _run([*git, 'init', '-q'], 'git init requirements')
        _run([*git, 'add', '-A', '-f', '.'], 'git add requirements')
        _run([*git, 'commit', '-q', '-m',
              'openstack-requirements with trovestack\'s constraints'],
             'git commit requirements')
        return f'{len(upper.splitlines())} constraints'

    return cached('requirements', key, build, root=root, progress=progress)


# -- all of it -------------------------------------------------------------

# The repositories devstack clones for the services environment enables:
# (directory under /opt/stack, PyPI name).
PROJECTS = (('keystone', 'keystone'), ('glance', 'glance'),
            ('nova', 'nova'), ('placement', 'openstack-placement'),
            ('neutron', 'neutron'), ('cinder', 'cinder'), ('trove', 'trove'),
            ('python-troveclient', 'python-troveclient'),
            ('tempest', 'tempest'),
            ('trove-tempest-plugin', 'trove-tempest-plugin'))
# The only openstack-requirements on PyPI (2018): its tools (the
# edit-constraints devstack runs) still serve, its lists are replaced.
REQUIREMENTS_SDIST = ('openstack-requirements', '1.2.0')
# What devstack pip-installs besides the projects' requirements.
# setuptools before 81 still has pkg_resources, which the 2018
# edit-constraints imports.
PIP_NAMES = ('pip', 'setuptools[core]<81', 'wheel', 'pbr', 'os-testr',
             'bindep', 'PyMySQL', 'python-memcached', 'pymemcache',
             'keystonemiddleware', 'osc-placement', 'python-openstackclient',
             'python-troveclient', 'glance-store[cinder]', 'diskimage-builder',
             'etcd3gw', 'psutil',
             # lib/tempest's, the tox its venv is made with
             'tox!=2.8.0,<4.0.0',
             # openstack-requirements 1.2.0's own requirements
             'fixtures', 'Parsley', 'six', 'packaging', 'requests', 'PyYAML')


def project_list(pins: Mapping[str, str]) -> list[Project]:
    """PROJECTS at the versions this project pins."""
    out = []
    for repo, dist in PROJECTS:
        version = pins.get(constraints.canonical(dist))
        if version is None:
            raise StagingError(f'no pin for {dist} in constraints.txt or '
                               'cloud-requirements.txt')
        out.append(Project(repo, dist, version))
    return out


def checkout_pins(checkout: pathlib.Path) -> dict[str, str]:
    """The pins of this checkout: constraints.txt, then the exact
    requirements of cloud-requirements.txt it lacks."""
    pins = constraints.read_pins(checkout / 'constraints.txt')
    extra = checkout / 'cloud-requirements.txt'
    if extra.is_file():
        for name, version in constraints.read_pins(extra).items():
            pins.setdefault(name, version)
    return pins


def stage(*, checkout: pathlib.Path, devstack_dir: pathlib.Path,
          services: Sequence[str], root: pathlib.Path | None = None,
          progress: Progress | None = None) -> Staged:
    """Every artifact of a devstack environment, from the cache or made."""
    require_tools('mmdebstrap', 'apt-get', 'dpkg-scanpackages', 'git')
    pins = checkout_pins(checkout)
    projects = project_list(pins)
    with tempfile.TemporaryDirectory(prefix='trovestack-pins-') as tmp:
        # The wheelhouse is built within the project's pins (its own
        # constraints.txt plus cloud-requirements' exact versions).
        pin_file = pathlib.Path(tmp, 'constraints.txt')
        pin_file.write_text(''.join(f'{name}=={version}\n'
                                    for name, version in sorted(pins.items())))
        sources = build_sources(projects, root=root, progress=progress)
        bindeps = [sources.path / p.repo / 'bindep.txt' for p in projects]
        bindeps.append(checkout / 'devstack' / 'files' / 'bindep.txt')
        wanted = packages.wanted_packages(devstack_dir, services, bindeps)

        def system() -> tuple[Artifact, Artifact]:
            rootfs = build_rootfs(devstack_rootfs_spec(), root=root,
                                  progress=progress)
            return rootfs, build_repo(rootfs, wanted, root=root,
                                      progress=progress)

        requirement_files = [sources.path / p.repo / 'requirements.txt'
                             for p in projects]
        requirement_files.append(checkout / 'requirements.txt')
        # Debian's side and PyPI's side at once: each waits on the
        # network part of the time.
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            debian = pool.submit(system)
            python = pool.submit(
                build_wheels, [p for p in requirement_files if p.is_file()],
                PIP_NAMES, pin_file, root=root, progress=progress)
            rootfs, repo = debian.result()
            wheels = python.result()
    inside, outside = rootfs_python(rootfs.path), python_version()
    if inside.split('.')[:3] != outside.split('.')[:3]:
        raise StagingError(f'the rootfs has Python {inside}, this host\'s '
                           f'{DEBIAN_PYTHON} is {outside}: the wheelhouse '
                           'would not fit (stage on Debian bookworm)')
    sdist = download_sdist(*REQUIREMENTS_SDIST, root=root)
    requirements = build_requirements(sdist, pins, wheels, root=root,
                                      progress=progress)
    staged = Staged(rootfs=rootfs, repo=repo, wheels=wheels,
                    sources=sources, requirements=requirements)
    cache.write_latest(root or layout.cache_root(),
                       [a.path for a in staged.artifacts()])
    return staged
