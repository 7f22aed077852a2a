"""Which datastore images can be built, from which Debian suite, and how
each one is configured for Trove's guest agent."""

import dataclasses

from trovestack.common import errors
from trovestack.datastore_images import archive

REPOSITORY_PREFIX = 'trovestack'
# Trove runs the database container as database_service_uid:gid (1001).
SERVICE_UID = 1001
LOCALE = 'en_US.UTF-8'
SYSTEM_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
# Packages every image needs besides the database: the locale, and
# nss_wrapper for a uid other than SERVICE_UID.
COMMON_PACKAGES = ('locales', 'libnss-wrapper', 'ca-certificates')


@dataclasses.dataclass(frozen=True)
class DatastoreSpec:
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
    def name(self):
        return f'{self.datastore}:{self.version}'

    @property
    def repository(self):
        return f'{REPOSITORY_PREFIX}/{self.datastore}'

    @property
    def tag(self):
        return self.version

    @property
    def all_packages(self):
        return tuple(sorted(set(self.packages) | set(COMMON_PACKAGES)))

    def image_config(self):
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


def _mariadb(version, suite):
    return DatastoreSpec(
        datastore='mariadb', version=version, suite=suite,
        packages=('mariadb-server', 'mariadb-client'),
        server_command=('mariadbd',), port=3306,
        data_volume='/var/lib/mysql',
        runtime_dirs=(('/run/mysqld', 0o755),),
        # the template data directory the entrypoint copies
        base_hook='mariadb-base.sh')


def _postgresql(version, suite):
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


def supported():
    """The buildable '<datastore>:<version>' names, sorted."""
    return sorted(SPECS)


def find(datastore, version):
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
