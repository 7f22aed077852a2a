"""Which datastore images can be built, from which Debian suite, and how
each one is configured for Trove's guest agent; and the backup images its
backups and restores run in."""

import dataclasses
import hashlib
import pathlib
from typing import TYPE_CHECKING

from trovestack.common import errors
from trovestack.common import files
from trovestack.images.datastore import archive

DATA_DIR = pathlib.Path(__file__).parent / 'data'

REPOSITORY_PREFIX = 'trovestack'
# Trove runs the database container as database_service_uid:gid (1001).
SERVICE_UID = 1001
LOCALE = 'en_US.UTF-8'
SYSTEM_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
# Packages every image needs besides the database: the locale, and
# nss_wrapper for a uid other than SERVICE_UID.
COMMON_PACKAGES = ('locales', 'libnss-wrapper', 'ca-certificates')

# One mmdebstrap customize hook: (script in DATA_DIR, its arguments).
Hook = tuple[str, tuple[object, ...]]


class _Named:
    """The names of an image of ``image_name`` and ``version``."""

    if TYPE_CHECKING:
        version: str

        @property
        def image_name(self) -> str: ...

    @property
    def name(self) -> str:
        return f'{self.image_name}:{self.version}'

    @property
    def repository(self) -> str:
        return f'{REPOSITORY_PREFIX}/{self.image_name}'

    @property
    def tag(self) -> str:
        return self.version


@dataclasses.dataclass(frozen=True)
class DatastoreSpec(_Named):
    """One buildable image: datastore name, version and its ingredients."""

    datastore: str          # Trove's datastore name: mariadb, postgresql
    version: str            # Trove's datastore version == the image tag
    suite: str              # Debian suite the packages come from
    packages: tuple
    server_command: tuple   # the image's default command
    port: int
    data_volume: str
    extra_path: str = ''    # prepended to PATH (PostgreSQL's bin dir)
    extra_env: tuple = ()
    stop_signal: str = ''
    # (path, mode) owned by SERVICE_UID: where the server puts its socket
    # (PostgreSQL's is world-writable + sticky, so any uid can run it)
    runtime_dirs: tuple = ()
    # dpkg path-excludes of this image only: files its server never uses
    excludes: tuple = ()
    # a second mmdebstrap customize hook (a file in data/), run after
    # customize.sh: '<script> <rootfs> <version> <uid>'
    base_hook: str = ''

    @property
    def image_name(self) -> str:
        """The repository without its prefix: names the archive."""
        return self.datastore

    @property
    def all_packages(self) -> tuple[str, ...]:
        return tuple(sorted(set(self.packages) | set(COMMON_PACKAGES)))

    def customize_hooks(self) -> 'list[Hook]':
        """(script in DATA_DIR, arguments) of mmdebstrap's customize
        hooks: customize.sh, then the image's own."""
        hooks: list[Hook] = [
            ('customize.sh', (self.datastore, SERVICE_UID, LOCALE))]
        if self.base_hook:
            hooks.append((self.base_hook, (self.version, SERVICE_UID)))
        return hooks

    def hook_inputs(self) -> dict[str, str]:
        """What of the hooks decides the base layer."""
        inputs = {'uid': str(SERVICE_UID), 'locale': LOCALE,
                  'customize': files.file_sha256(DATA_DIR / 'customize.sh')}
        if self.base_hook:
            inputs['base_hook'] = files.file_sha256(DATA_DIR / self.base_hook)
        return inputs

    def image_config(self) -> archive.ImageConfig:
        path = SYSTEM_PATH
        if self.extra_path:
            path = f'{self.extra_path}:{path}'
        env = {'PATH': path, 'LANG': 'en_US.utf8', **dict(self.extra_env)}
        return archive.ImageConfig(
            entrypoint=['/usr/local/bin/entrypoint.sh'],
            cmd=list(self.server_command), env=env,
            exposed_ports=(f'{self.port}/tcp',),
            volumes=(self.data_volume,), stop_signal=self.stop_signal,
            labels={'org.opencontainers.image.title': self.repository,
                    'org.opencontainers.image.version': self.version,
                    'io.trovestack.debian-suite': self.suite})


def _mariadb(version: str, suite: str) -> DatastoreSpec:
    return DatastoreSpec(
        datastore='mariadb', version=version, suite=suite,
        packages=('mariadb-server', 'mariadb-client'),
        server_command=('mariadbd',), port=3306,
        data_volume='/var/lib/mysql',
        runtime_dirs=(('/run/mysqld', 0o755),),
        # the template data directory the entrypoint copies
        base_hook='mariadb-base.sh')


def _postgresql(version: str, suite: str) -> DatastoreSpec:
    lib = f'/usr/lib/postgresql/{version}/lib'
    return DatastoreSpec(
        datastore='postgresql', version=version, suite=suite,
        packages=(f'postgresql-{version}',),
        server_command=('postgres',), port=5432,
        data_volume='/var/lib/postgresql/data',
        extra_path=f'/usr/lib/postgresql/{version}/bin',
        extra_env=(('PGDATA', '/var/lib/postgresql/data'),),
        stop_signal='SIGINT',
        runtime_dirs=(('/run/postgresql', 0o3777),),
        # JIT (LLVM, z3 and the server's bitcode: ~190 MiB of the ~440)
        # is optional: without its provider library the server runs with
        # JIT off.  Message catalogues: Trove's config asks for English.
        excludes=(f'{lib}/llvmjit*', f'{lib}/bitcode/*',
                  '/usr/lib/x86_64-linux-gnu/libLLVM*',
                  '/usr/lib/x86_64-linux-gnu/libz3.so*',
                  '/usr/share/locale/*'),
        base_hook='postgresql-base.sh')


SPECS = {spec.name: spec for spec in (
    _mariadb('11.8', 'trixie'),
    _mariadb('10.11', 'bookworm'),
    _postgresql('17', 'trixie'),
    _postgresql('15', 'bookworm'),
)}


def supported() -> list[str]:
    """The buildable '<datastore>:<version>' names, sorted."""
    return sorted(SPECS)


def find(datastore: str, version: str) -> DatastoreSpec:
    """The spec of datastore:version; UserError naming the valid ones."""
    spec = SPECS.get(f'{datastore}:{version}')
    if spec is not None:
        return spec
    versions = [s.version for s in SPECS.values() if s.datastore == datastore]
    if versions and not version:
        raise errors.UserError(
            f'Name the {datastore} version (the image tag Trove asks for): '
            + ', '.join(f'{datastore}:{v}' for v in sorted(versions)))
    if versions:
        raise errors.UserError(
            f'No image for {datastore} version {version}: '
            f'{datastore} versions are {", ".join(sorted(versions))}')
    names = sorted({s.datastore for s in SPECS.values()})
    raise errors.UserError(
        f'Unknown datastore {datastore!r}: datastore images exist for '
        f'{", ".join(names)} ({", ".join(supported())})')


# --- backup images -------------------------------------------------------
# Trove's guest agent runs every backup and restore in a second container,
# CONF.<manager>.backup_docker_image + ':' + <datastore version>, which
# runs ``python3 main.py ...`` (the backup/ directory of Trove's tree) with
# the datastore's own backup tools.  Ours: that code, its requirements in a
# venv, and the tools from the same Debian suite as the database image (so
# mariadb-backup is the server's version).  Named as upstream's
# (quay.io/openstack.trove/db-backup-<datastore>), under our prefix.
BACKUP_PREFIX = 'db-backup-'
BACKUP_CODE_DIR = '/opt/trove/backup'   # main.py puts /opt/trove on sys.path
BACKUP_VENV = '/opt/trove-backup-venv'
# Debian's Python and glibc minor version per suite: the wheels' target.
SUITE_PYTHON = {'bookworm': ('3.11', 36), 'trixie': ('3.13', 41)}
# Beside the tools: Python (venv: the wheels install offline in the image),
# the C++ runtime greenlet's module needs (oslo.service -> eventlet; the
# MariaDB tools bring it, PostgreSQL's do not), the init upstream uses,
# TLS roots for Swift, /etc/services, and openssl for backups encrypted
# before Victoria (main.py's decrypt path).
BACKUP_COMMON_PACKAGES = ('python3', 'python3-venv', 'libstdc++6',
                          'dumb-init', 'ca-certificates', 'netbase',
                          'openssl')
BACKUP_HOOK = 'backup-base.sh'


@dataclasses.dataclass(frozen=True)
class BackupSpec(_Named):
    """One buildable backup image: the datastore image it serves and the
    tools Trove's backup driver for it runs."""

    datastore: str          # Trove's datastore (and config section)
    version: str            # Trove's datastore version == the image tag
    suite: str
    packages: tuple
    strategy: str           # Trove's backup_strategy: main.py --driver
    extra_path: str = ''
    # Message catalogues (~30 MiB): the agent parses the tools' English.
    excludes: tuple = ('/usr/share/locale/*',)
    # The venv's: backup/requirements.txt of the Trove built from and the
    # constraints it is installed with (set per build: with_venv()).
    requirements: str = ''
    constraints: str = ''

    @property
    def image_name(self) -> str:
        return f'{BACKUP_PREFIX}{self.datastore}'

    @property
    def python_version(self) -> str:
        return SUITE_PYTHON[self.suite][0]

    @property
    def glibc_minor(self) -> int:
        return SUITE_PYTHON[self.suite][1]

    @property
    def all_packages(self) -> tuple[str, ...]:
        return tuple(sorted(set(self.packages)
                            | set(BACKUP_COMMON_PACKAGES)))

    def customize_hooks(self, wheelhouse: pathlib.Path | str) -> 'list[Hook]':
        """The one customize hook: the venv, installed offline from the
        host-made ``wheelhouse``."""
        return [(BACKUP_HOOK, (wheelhouse, BACKUP_VENV))]

    def with_venv(self, requirements: str, constraints: str) -> 'BackupSpec':
        """This spec for a venv of ``requirements`` (text) installed with
        ``constraints`` (text)."""
        return dataclasses.replace(self, requirements=requirements,
                                   constraints=constraints)

    def hook_inputs(self) -> dict[str, str]:
        return {'backup_hook': files.file_sha256(DATA_DIR / BACKUP_HOOK),
                'python': self.python_version,
                'requirements': _text_sha256(self.requirements),
                'constraints': _text_sha256(self.constraints)}

    def image_config(self) -> archive.ImageConfig:
        path = f'{BACKUP_VENV}/bin:{SYSTEM_PATH}'
        if self.extra_path:
            path = f'{BACKUP_VENV}/bin:{self.extra_path}:{SYSTEM_PATH}'
        return archive.ImageConfig(
            # Trove passes the command only ("python3 main.py ..."), run
            # from the working directory, as root (no user given).
            entrypoint=['/usr/bin/dumb-init', '--single-child', '--'],
            cmd=['python3', 'main.py', '--help'],
            env={'PATH': path, 'LANG': 'C.UTF-8'},
            working_dir=BACKUP_CODE_DIR,
            labels={'org.opencontainers.image.title': self.repository,
                    'org.opencontainers.image.version': self.version,
                    'io.trovestack.debian-suite': self.suite,
                    'io.trovestack.backup-strategy': self.strategy})


# What the datastore image builder builds: a datastore or a backup image.
ImageSpec = DatastoreSpec | BackupSpec


def _text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _mariadb_backup(version: str, suite: str) -> BackupSpec:
    # mariadb-backup (and mbstream); its client-core dependency brings
    # /etc/mysql/my.cnf, which restores' --prepare reads (Trove mounts no
    # /etc/mysql into the restore container).
    return BackupSpec(datastore='mariadb', version=version, suite=suite,
                      packages=('mariadb-backup',), strategy='mariabackup')


def _postgresql_backup(version: str, suite: str) -> BackupSpec:
    # pg_basebackup; the server's bin directory first on PATH, before
    # Debian's perl wrappers in /usr/bin.
    return BackupSpec(datastore='postgresql', version=version, suite=suite,
                      packages=(f'postgresql-client-{version}',),
                      strategy='pg_basebackup',
                      extra_path=f'/usr/lib/postgresql/{version}/bin')


# One backup image per datastore image, from its suite.
_BACKUP_OF = {'mariadb': _mariadb_backup, 'postgresql': _postgresql_backup}
BACKUP_SPECS = {backup.name: backup for backup in (
    _BACKUP_OF[spec.datastore](spec.version, spec.suite)
    for spec in SPECS.values())}


def backup_supported() -> list[str]:
    """'<datastore>:<version>' of every buildable backup image, sorted."""
    return sorted(f'{s.datastore}:{s.version}' for s in BACKUP_SPECS.values())


def find_backup(datastore: str, version: str) -> BackupSpec:
    """The backup image spec of datastore:version (the datastore image's
    name); UserError naming the valid ones."""
    find(datastore, version)
    return BACKUP_SPECS[f'{BACKUP_PREFIX}{datastore}:{version}']
