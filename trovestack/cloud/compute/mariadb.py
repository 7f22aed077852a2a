"""A MariaDB server of the compute layer's own, for placement, neutron and
nova (the control plane's nova-api included).

Neutron's API and its OVN event threads write concurrently, and so do
nova's conductor, scheduler and API; on SQLite that ends in "database is
locked" while ports are created or servers built.  This
server listens on a unix socket only (``--skip-networking``); root logs in
through unix-socket authentication, so there is no password to keep.
"""

import pathlib

from trovestack.cloud import supervision
from trovestack.cloud.compute import daemons
from trovestack.cloud.compute import paths as paths_mod

NAME = 'mariadb'
SERVER = pathlib.Path('/usr/sbin/mariadbd')


def socket_path(paths: paths_mod.ComputePaths) -> pathlib.Path:
    return paths.run_dir / 'mysqld.sock'


def data_dir(paths: paths_mod.ComputePaths) -> pathlib.Path:
    return paths.service_dir(NAME) / 'data'


def url(paths: paths_mod.ComputePaths, database: str) -> str:
    """SQLAlchemy URL of a database on this server (PyMySQL, unix socket)."""
    return (f'mysql+pymysql://root@localhost/{database}'
            f'?unix_socket={socket_path(paths)}&charset=utf8')


def initialise(paths: paths_mod.ComputePaths) -> None:
    """Create the system tables on first use."""
    if not SERVER.exists():
        raise daemons.ComputeError(
            f'{SERVER} not found: install the Debian package mariadb-server')
    if (data_dir(paths) / 'mysql').is_dir():
        return
    data_dir(paths).mkdir(mode=0o700, parents=True, exist_ok=True)
    daemons.run(['mariadb-install-db', '--no-defaults', '--user=root',
                 f'--datadir={data_dir(paths)}', '--skip-test-db',
                 '--auth-root-authentication-method=socket'])


def daemon(paths: paths_mod.ComputePaths) -> supervision.Program:
    sock = socket_path(paths)
    return supervision.Program(NAME, [
        str(SERVER), '--no-defaults', '--user=root',
        f'--datadir={data_dir(paths)}', f'--socket={sock}',
        f'--pid-file={paths.run_dir / NAME}.pid', '--skip-networking',
        '--innodb-buffer-pool-size=32M', '--performance-schema=off',
        '--skip-log-bin', '--max-connections=200',
    ], None, lambda: daemons.unix_socket_answers(sock))


def create_databases(paths: paths_mod.ComputePaths, *names: str) -> None:
    """Create the databases that do not exist yet (one client call)."""
    statements = ';'.join(f'CREATE DATABASE IF NOT EXISTS {name} '
                          'CHARACTER SET utf8' for name in names)
    daemons.run(['mariadb', '--no-defaults', f'--socket={socket_path(paths)}',
                 '-u', 'root', '-e', statements])
