"""Backup images against the real parts: each image built offline and run
by a private dockerd; for MariaDB 11.8, a full backup and a restore run by
Trove 26's own code end to end.

Trove's guest agent side (``MariaDBApp.create_backup`` through the
manager's ``create_backup``, ``restore_backup``, ``get_backup_image``)
drives the dockerd the datastore image tests start, against a MariaDB 11.8
datastore container started as Trove starts it; the backup image's own
``main.py`` (Trove's backup/ code) streams ``mariadb-backup`` into object
storage and back.  Object storage is real Swift API: Ceph's RADOS gateway
(the compute cloud's object store) on a one-OSD cluster of its own, with
an in-memory OSD, on loopback, without the compute cloud; the token and
storage URL come from the gateway's own Swift auth (``/auth/1.0``), as
Keystone's would in a cloud.  The backup image reaches the agent the way
Trove 26 needs: through a registry (Debian's docker-registry on
loopback), since ``get_backup_image`` asks the registry before each run.

The guest's host paths (``/etc/mysql``, ``/var/lib/mysql``, the socket
directory, ``/tmp``) are rebased into a temporary directory in the
volumes Trove hands to Docker; everything listens on loopback only.
"""

import contextlib
import io
import json
import os
import pathlib
import shutil
import signal
import subprocess
import tarfile
import tempfile
import time
import types
import urllib.error
import urllib.parse
import urllib.request
import uuid

import pytest

from tests.integration import test_datastore_images as images
from trovestack.cloud import registry
from trovestack.cloud.compute import ceph
from trovestack.common import ceph_cluster
from trovestack.common import mounts
from trovestack.common import waiting
from trovestack.images.datastore import backup
from trovestack.images.datastore import datastores
from trovestack.trove import trove_config

pytestmark = pytest.mark.datastore_image

# The datastore image tests' guest host directories.
host_dirs = images.host_dirs
free_port = images.free_port
owned_dir = images.owned_dir
CEPH_PROGRAMS = ('ceph-mon', 'ceph-osd', 'radosgw', 'radosgw-admin',
                 'monmaptool', 'ceph-authtool')


class ObjectStore:
    """A one-node Ceph (monitor, one memstore OSD) and its RADOS gateway
    with the Swift API, every messenger and port on loopback, under one
    directory; no cephx (nothing leaves loopback)."""

    def __init__(self, root):
        self.root = pathlib.Path(root)
        self.conf = self.root / 'ceph.conf'
        self.port = free_port()
        self.processes = []

    def _conf(self, mon_port):
        root = self.root
        lines = [
            '[global]', f'fsid = {self.fsid}',
            f'mon_host = v1:127.0.0.1:{mon_port}',
            'mon_initial_members = a', 'public_addr = 127.0.0.1',
            'cluster_addr = 127.0.0.1', 'ms_bind_msgr2 = false',
            *(f'auth_{who}_required = none'
              for who in ('cluster', 'service', 'client')),
            'osd_pool_default_size = 1', 'osd_pool_default_min_size = 1',
            'mon_allow_pool_size_one = true', 'osd_crush_chooseleaf_type = 0',
            'osd_pool_default_pg_num = 8', 'osd_pool_default_pgp_num = 8',
            'mon_data_avail_crit = 1', 'mon_data_avail_warn = 2',
            'osd_objectstore = memstore',
            f'memstore_device_bytes = {1 << 30}',
            f'run_dir = {root}/run', f'log_file = {root}/log/$name.log',
            f'admin_socket = {root}/run/$name.asok',
            f'pid_file = {root}/run/$name.pid',
            f'keyring = {root}/keyring',
            '[mon.a]', f'mon_data = {root}/mon-a',
            '[osd.0]', f'osd_data = {root}/osd-0',
            # As the cloud's Ceph: no monitor commands of the OSD's own
            # while it starts (a monitor just started refused one with
            # 'wrong fsid' and the OSD exited); start() puts it in the map.
            'osd_crush_update_on_start = false',
            'osd_class_update_on_start = false',
            '[client.rgw.test]',
            f'rgw_frontends = beast endpoint=127.0.0.1:{self.port}',
            f'rgw_data = {root}/rgw',
            'rgw_enable_apis = swift, swift_auth, admin',
            'rgw_thread_pool_size = 16', '']
        return '\n'.join(lines)

    def _run(self, *argv, timeout=120):
        result = subprocess.run(
            [*argv, '-c', str(self.conf)] if argv[0] != 'monmaptool'
            else list(argv), capture_output=True, text=True,
            timeout=timeout, stdin=subprocess.DEVNULL)
        assert result.returncode == 0, (argv, result.stderr[-2000:])
        return result.stdout

    def _setup(self, *argv):
        """A monitor command of the set-up, tried again while the monitor
        refuses it, as the cloud's (cloud.compute.ceph._ceph_setup): one
        just started answered 'osd new' and then refused 'osd crush add'
        with "EPERM: problem getting command descriptions" on a busy
        host."""
        return waiting.retry(
            ' '.join(argv[:3]), lambda: self._run(*argv),
            ceph.SETUP_RETRY_SECONDS, retry_on=AssertionError, interval=2.0)

    def _daemon(self, *argv):
        log = open(self.root / 'log' / f'{argv[0]}.out', 'wb')
        with log:
            self.processes.append(subprocess.Popen(
                [*argv, '-c', str(self.conf), '-f'], stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True))

    def start(self):
        self.fsid = str(uuid.uuid4())
        mon_port = free_port()
        for name in ('run', 'log', 'mon-a', 'osd-0', 'rgw'):
            (self.root / name).mkdir(parents=True, exist_ok=True)
        self.conf.write_text(self._conf(mon_port))
        self._run('ceph-authtool', '--create-keyring',
                  str(self.root / 'keyring'), '--gen-key', '-n', 'mon.',
                  '--cap', 'mon', 'allow *')
        self._run('monmaptool', '--create', '--fsid', self.fsid, '--addv',
                  'a', f'[v1:127.0.0.1:{mon_port}]',
                  str(self.root / 'monmap'))
        self._run('ceph-mon', '--mkfs', '-i', 'a', '--monmap',
                  str(self.root / 'monmap'))
        self._daemon('ceph-mon', '-i', 'a')
        self._wait('the monitor', lambda: self._answers(
            'ceph', '--connect-timeout', '5', 'mon', 'stat'))
        osd = str(uuid.uuid4())
        self._setup('ceph', 'osd', 'new', osd)
        self._run('ceph-osd', '--mkfs', '-i', '0', '--osd-uuid', osd)
        self._setup('ceph', *ceph_cluster.crush_add('test'))
        self._daemon('ceph-osd', '-i', '0')
        self._daemon('radosgw', '-n', 'client.rgw.test')
        self._wait('the RADOS gateway', self._http_answers)
        return self

    def _answers(self, *argv):
        with contextlib.suppress(subprocess.SubprocessError):
            return subprocess.run(
                [*argv, '-c', str(self.conf)], capture_output=True,
                timeout=15, stdin=subprocess.DEVNULL).returncode == 0
        return False

    def _http_answers(self):
        try:
            urllib.request.urlopen(f'http://127.0.0.1:{self.port}/',
                                   timeout=2).close()
        except urllib.error.HTTPError:
            return True
        except OSError:
            return False
        return True

    def _wait(self, what, ready, timeout=180):
        deadline = time.monotonic() + timeout
        while not ready():
            for process in self.processes:
                assert process.poll() is None, (
                    f'{process.args[0]} exited while waiting for {what}: '
                    + self.log_tail())
            assert time.monotonic() < deadline, (
                f'{what} did not answer: ' + self.log_tail())
            time.sleep(1)

    def log_tail(self):
        tails = []
        for log in sorted((self.root / 'log').glob('*')):
            text = log.read_text(errors='replace').splitlines()[-5:]
            tails.append(f'--- {log.name}\n' + '\n'.join(text))
        return '\n'.join(tails)

    def swift_account(self, user='trove'):
        """(storage URL, token) of a new Swift user, through the gateway's
        own Swift auth."""
        self._run('radosgw-admin', 'user', 'create', f'--uid={user}',
                  f'--display-name={user}')
        self._run('radosgw-admin', 'subuser', 'create', f'--uid={user}',
                  f'--subuser={user}:swift', '--access=full')
        keys = json.loads(self._run(
            'radosgw-admin', 'key', 'create', f'--subuser={user}:swift',
            '--key-type=swift', '--gen-secret'))
        secret = keys['swift_keys'][0]['secret_key']
        request = urllib.request.Request(
            f'http://127.0.0.1:{self.port}/auth/1.0',
            headers={'X-Auth-User': f'{user}:swift', 'X-Auth-Key': secret})
        with urllib.request.urlopen(request, timeout=30) as response:
            return (response.headers['X-Storage-Url'],
                    response.headers['X-Auth-Token'])

    def stop(self):
        for process in reversed(self.processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


# The datastore image tests' private dockerd.  Trove runs backups with
# network_mode host, for which dockerd mounts a namespace file under its
# directory that it leaves behind: that fixture then keeps the directory,
# and _dockerd_mounts (set up before it, so torn down after it) takes the
# mount down and removes it.
docker_client = images.docker_client
_DOCKERD_ROOTS = []


@pytest.fixture(scope='module', autouse=True)
def _dockerd_mounts():
    yield
    for root in _DOCKERD_ROOTS:
        if root.is_dir() and not mounts.teardown(root).remaining:
            shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(autouse=True)
def _dockerd_root(request):
    if 'docker_client' in request.fixturenames:
        client = request.getfixturevalue('docker_client')
        root = pathlib.Path(client.info()['DockerRootDir']).parent
        if root not in _DOCKERD_ROOTS:
            _DOCKERD_ROOTS.append(root)


@pytest.fixture(scope='module')
def object_store():
    if os.geteuid() or not all(shutil.which(p) for p in CEPH_PROGRAMS):
        pytest.skip('needs root and Ceph (ceph-mon, ceph-osd, radosgw)')
    root = pathlib.Path(tempfile.mkdtemp(prefix='tsceph-'))
    store = ObjectStore(root)
    try:
        yield store.start()
    finally:
        store.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope='module')
def swift_account(object_store):
    """(storage URL, token) of the one Swift account of the tests: the
    gateway's containers are one namespace (no tenants), so a second
    user could not write into the agent's database_backups."""
    return object_store.swift_account()


@pytest.fixture(scope='module')
def local_registry():
    if not shutil.which('docker-registry'):
        pytest.skip('Debian package docker-registry not installed')
    data_dir = pathlib.Path(tempfile.mkdtemp(prefix='tsbreg-'))
    reg = registry.start(data_dir, port=free_port())
    try:
        yield reg
    finally:
        registry.stop(data_dir)
        shutil.rmtree(data_dir, ignore_errors=True)


def build_backup_image(name):
    datastore, version = name.split(':')
    return backup.build_backup(datastore, version,
                               output_dir=images.IMAGE_CACHE)


def tool_version(client, image, argv):
    output = client.containers.run(image.reference, argv, remove=True,
                                   network_mode='none', stderr=True)
    return output.decode()


@pytest.mark.parametrize('name', datastores.backup_supported())
def test_backup_image_runs_trove_backup_code(docker_client, name):
    """Each image loads, runs Trove's main.py from its working directory
    with the venv's python3 (every driver module imports), and carries the
    backup tools of its datastore's version."""
    image = build_backup_image(name)
    assert image.reference == (f'trovestack/db-backup-{image.datastore}:'
                               f'{image.version}')
    with open(image.path, 'rb') as archive_file:
        loaded = docker_client.images.load(archive_file.read())
    assert [tag for i in loaded for tag in i.tags] == [image.reference]
    spec = datastores.find_backup(image.datastore, image.version)
    usage = tool_version(docker_client, image, ['python3', 'main.py',
                                                '--help'])
    assert '--restore-from' in usage and spec.strategy in usage
    # The classes main() imports, once its options are registered.
    imports = ('import main; main.CONF.register_cli_opts(main.cli_opts); '
               'from oslo_utils import importutils as i; '
               f'print(i.import_class(main.driver_mapping[{spec.strategy!r}'
               ']), i.import_class(main.storage_mapping["swift"]))')
    output = tool_version(docker_client, image, ['python3', '-c', imports])
    assert 'backup.drivers.' in output and 'SwiftStorage' in output
    if image.datastore == 'mariadb':
        version = tool_version(docker_client, image,
                               ['mariadb-backup', '--version'])
        assert f' {image.version}.' in version, version
        assert tool_version(docker_client, image, ['which', 'mbstream'])
    else:
        version = tool_version(docker_client, image,
                               ['pg_basebackup', '--version'])
        assert f'(PostgreSQL) {image.version}.' in version, version


class Recorder:
    """Trove's conductor API as the agent calls it: what it was told."""

    updates = []

    def __init__(self, context):
        self.context = context

    def update_backup(self, guest_id, sent=None, **state):
        Recorder.updates.append(dict(state))


def rebased_run_container(paths):
    """Trove's docker_util.run_container with the guest's host paths of
    the volumes replaced by the test's."""
    from trove.guestagent.utils import docker as docker_util

    original = docker_util.run_container

    def run(client, image, name, network_mode='host', volumes=None,
            command='', user=''):
        rebased = {paths.get(host, host): bind
                   for host, bind in (volumes or {}).items()}
        return original(client, image, name, network_mode=network_mode,
                        volumes=rebased, command=command, user=user)
    return run


def assert_healthy(client):
    assert images.wait_healthy(client) == 'healthy', images.logs(client)


def sql(url, *statements):
    import sqlalchemy
    from trove.guestagent.utils import mysql as mysql_util

    engine = sqlalchemy.create_engine(url)
    try:
        with mysql_util.SqlClient(engine) as client:
            rows = [client.execute(sqlalchemy.text(statement)).fetchall()
                    if statement.startswith(('SELECT', 'SHOW')) else
                    client.execute(sqlalchemy.text(statement))
                    for statement in statements]
    finally:
        engine.dispose()
    return rows[-1]


class Agent:
    """Trove's guest agent for one datastore, as far as backups go: its
    app object, configuration and conductor, with the volumes' host paths
    rebased (``paths``: {guest path: test path})."""

    def __init__(self, monkeypatch, client, app_class, image, repository,
                 mount_point, paths):
        from trove.common import cfg
        from trove.guestagent.datastore import service as base_service
        from trove.guestagent.utils import docker as docker_util

        self.conf = cfg.CONF
        self.overrides = [
            ('datastore_manager', image.datastore, None),
            ('datastore_version', image.version, None),
            ('state_change_wait_time', 120, None),
            ('backup_docker_image', repository, image.datastore),
            ('mount_point', str(mount_point), image.datastore)]
        for option, value, group in self.overrides:
            self.conf.set_override(option, value, group=group)
        monkeypatch.setattr(docker_util, 'run_container',
                            rebased_run_container(paths))
        monkeypatch.setattr(base_service.conductor_api, 'API', Recorder)
        Recorder.updates = []
        self.app = app_class(base_service.BaseDbStatus(client), client)
        # In a guest the agent's configuration is parsed before the
        # service module is imported, so get_backup_image's default
        # version is the instance's; this test process imported it
        # earlier.
        self.app.get_backup_image = lambda: app_class.get_backup_image(
            self.app, image.version)
        self.image = image

    def context(self, token):
        notification = types.SimpleNamespace(
            payload={}, server_type='api', notify_end=lambda **kw: None,
            notify_exc_info=lambda *args: None)
        return types.SimpleNamespace(auth_token=token,
                                     notification=notification)

    def backup(self, manager_class, swift_url, token):
        """The manager's create_backup: Trove's volumes and command, the
        run in the backup image, its output parsed; the backup_info of
        the result."""
        info = {'id': str(uuid.uuid4()), 'datastore': self.image.datastore,
                'datastore_version': self.image.version,
                'swift_url': swift_url}
        started = time.monotonic()
        try:
            manager_class.create_backup(types.SimpleNamespace(app=self.app),
                                        self.context(token), info)
        except Exception as exc:
            output = self.app.docker_client.containers.get(
                'db_backup').logs(tail=30).decode(errors='replace')
            raise AssertionError(f'{exc}\nThe backup container:\n'
                                 f'{output}') from exc
        final = Recorder.updates[-1]
        assert final['state'] == 'COMPLETED', Recorder.updates
        print(f'{self.image.datastore} backup: '
              f'{time.monotonic() - started:.1f} s')
        return dict(info, location=final['location'],
                    checksum=final['checksum'])

    def clear(self):
        for option, _, group in self.overrides:
            self.conf.clear_override(option, group=group)


def pushed_backup_image(client, registry_, name):
    """Build the backup image and push it where the agent looks for it;
    the repository for backup_docker_image."""
    backup_image = build_backup_image(name)
    registry.push(backup_image.path, registry_.address,
                  backup_image.repository, backup_image.tag)
    repository = trove_config.backup_docker_images(
        [backup_image.datastore], source='registry',
        registry=registry_.address)[backup_image.datastore]
    assert repository == f'{registry_.address}/{backup_image.repository}'
    return repository


def test_mariadb_backup_and_restore_by_trove(docker_client, host_dirs,
                                             swift_account, local_registry,
                                             monkeypatch):
    from trove.common import constants
    from trove.guestagent.datastore.mariadb import service
    from trove.guestagent.datastore.mysql_common import manager
    from trove.guestagent.utils import docker as docker_util

    name = 'mariadb:11.8'
    # The datastore image loaded (embedded), the backup image in the
    # registry the agent looks it up in.
    image = images.build_and_load(docker_client, name)
    repository = pushed_backup_image(docker_client, local_registry, name)
    url, lib, _ = images.start_mariadb(docker_client, image, host_dirs)
    assert_healthy(docker_client)
    admin_password = 'Admin-' + os.urandom(6).hex()
    # What Trove's secure() makes: os_admin@localhost, all privileges.
    sql(url, f"CREATE USER 'os_admin'@'localhost' IDENTIFIED BY "
             f"'{admin_password}'",
        "GRANT ALL PRIVILEGES ON *.* TO 'os_admin'@'localhost' "
        "WITH GRANT OPTION",
        'CREATE DATABASE shop',
        'CREATE TABLE shop.items (id INT PRIMARY KEY, name VARCHAR(40))',
        *(f"INSERT INTO shop.items VALUES ({i}, 'item-{i}')"
          for i in range(1, 201)))

    swift_url, token = swift_account
    paths = {'/etc/mysql': str(host_dirs / 'etc-mysql'),
             '/var/lib/mysql': str(lib),
             constants.MYSQL_HOST_SOCKET_PATH: str(host_dirs / 'mysqld'),
             '/tmp': str(owned_dir(host_dirs / 'tmp'))}
    agent = Agent(monkeypatch, docker_client, service.MariaDBApp, image,
                  repository, lib, paths)
    agent.app.get_auth_password = lambda file='os_admin.cnf': admin_password
    try:
        backup_info = agent.backup(manager.MySqlManager, swift_url, token)
        assert backup_info['location'] == (
            f'{swift_url}/database_backups/{backup_info["id"]}.xbstream.gz')
        assert admin_password not in json.dumps(Recorder.updates)

        # After the backup: a change the restore must undo.
        sql(url, 'DROP DATABASE shop', 'CREATE DATABASE after_backup')

        # Trove's restore: the server stopped, its data directory
        # emptied, the backup streamed back and prepared in the backup
        # image, the files given to the database's uid.
        data_dir = lib / 'data'
        started = time.monotonic()
        agent.app.restore_backup(agent.context(token), backup_info,
                                 str(data_dir))
        print(f'mariadb restore: {time.monotonic() - started:.1f} s')
        assert (data_dir / 'ibdata1').stat().st_uid == 1001
        assert not (data_dir / 'after_backup').exists()

        # The restored server comes up (the entrypoint's auto-upgrade
        # path runs mariadb-upgrade and writes a new healthcheck account)
        # and has the data.  Without its upgrade record, as a guest's
        # restored directory was seen: mariadb-upgrade then does its whole
        # work, FLUSH PRIVILEGES included, after which root needs the
        # password the backup had.
        for record in data_dir.glob('*_upgrade_info'):
            record.unlink()
        # As Trove's MariaDB manager goes on (reset_password_for_restore):
        # the server started with --skip-grant-tables, root's password
        # set through it, that container removed; then the normal start.
        root_password = 'Reset-' + os.urandom(6).hex()
        docker_util.remove_container(docker_client)
        images.start_mariadb(
            docker_client, image, host_dirs,
            command='--defaults-file=/etc/mysql/my.cnf --skip-grant-tables '
                    '--datadir=/var/lib/mysql/data')
        assert_healthy(docker_client)
        docker_util.run_command(docker_client, [
            'mariadb', '--defaults-file=/etc/mysql/my.cnf', '-u', 'root',
            '-e', "FLUSH PRIVILEGES; ALTER USER 'root'@'localhost' "
                  f"IDENTIFIED BY '{root_password}';"])
        docker_util.remove_container(docker_client)
        url, _, _ = images.start_mariadb(docker_client, image, host_dirs,
                                         password=root_password)
        assert_healthy(docker_client)
        assert sql(url, 'SELECT COUNT(*), MAX(name) FROM shop.items') == [
            (200, 'item-99')]
        assert ('after_backup',) not in sql(url, 'SHOW DATABASES')
    finally:
        agent.clear()
        for container in ('database', 'db_backup', 'db_restore'):
            docker_util.remove_container(docker_client, container)


def rebase_root_file_ops(monkeypatch, paths, under):
    """Trove's operating_system.remove_dir_contents (rm -rf as root) and
    chown (-R as root) on the test's directory of a guest path, and never
    outside ``under``."""
    from trove.guestagent.common import operating_system

    def rebased(original):
        def run(path, *args, **kwargs):
            for guest, host in paths.items():
                if path == guest or path.startswith(guest + '/'):
                    path = host + path[len(guest):]
            assert pathlib.Path(path).is_relative_to(under), path
            return original(path, *args, **kwargs)
        return run

    for name in ('remove_dir_contents', 'chown'):
        monkeypatch.setattr(operating_system, name,
                            rebased(getattr(operating_system, name)))


def test_postgresql_backup_and_restore_by_trove(docker_client, host_dirs,
                                                swift_account,
                                                local_registry,
                                                monkeypatch):
    """pg_basebackup streamed to object storage by Trove's manager, with
    the WAL archive's label checked by the backup code (Trove's config
    template archives WAL there); the restore by Trove's restore_backup,
    then what the manager's do_prepare does after it (recovery.signal),
    and the server recovers with the data."""
    import swiftclient
    from trove.common import constants
    from trove.guestagent.datastore.postgres import manager
    from trove.guestagent.datastore.postgres import service
    from trove.guestagent.utils import docker as docker_util

    name = 'postgresql:17'
    image = images.build_and_load(docker_client, name)
    repository = pushed_backup_image(docker_client, local_registry, name)
    sockets, _, _ = images.start_postgresql(docker_client, image, host_dirs)
    assert_healthy(docker_client)
    connection = service.PostgresConnection('postgres', host=str(sockets))
    connection.execute('CREATE DATABASE shop')
    connection.execute('CREATE TABLE items AS '
                       'SELECT generate_series(1, 500) AS id')
    # pg_basebackup (Trove gives no --checkpoint=fast) waits for a spread
    # checkpoint, paced over checkpoint_completion_target x
    # checkpoint_timeout (0.9 x 5 min) when buffers are dirty: none now.
    connection.execute('CHECKPOINT')

    swift_url, token = swift_account
    lib = host_dirs / 'lib-postgresql'
    paths = {'/var/lib/postgresql/data': str(lib / 'data'),
             constants.POSTGRESQL_HOST_SOCKET_PATH: str(sockets)}
    agent = Agent(monkeypatch, docker_client, service.PgSqlApp, image,
                  repository, lib, paths)
    try:
        backup_info = agent.backup(manager.PostgresManager, swift_url, token)
        assert backup_info['location'] == (
            f'{swift_url}/database_backups/{backup_info["id"]}.tar.gz')
        swift = swiftclient.Connection(preauthurl=swift_url,
                                       preauthtoken=token)
        headers, body = swift.get_object('database_backups',
                                         f'{backup_info["id"]}.tar.gz')
        assert headers['x-object-meta-label'] == backup_info['id']
        assert headers['x-object-meta-datastore-version'] == image.version
        with tarfile.open(fileobj=io.BytesIO(body), mode='r:gz') as tar:
            names = tar.getnames()
        assert 'PG_VERSION' in names and 'backup_label' in names

        connection.execute('DROP DATABASE shop')
        connection.execute('DROP TABLE items')
        rebase_root_file_ops(monkeypatch, paths, host_dirs)
        started = time.monotonic()
        agent.app.restore_backup(agent.context(token), backup_info,
                                 agent.app.datadir)
        print(f'postgresql restore: {time.monotonic() - started:.1f} s')
        pgdata = pathlib.Path(agent.app.datadir)
        assert (pgdata / 'PG_VERSION').stat().st_uid == 1001
        # The manager's do_prepare after a restore from Swift.
        signal_file = pgdata / 'recovery.signal'
        signal_file.touch()
        os.chown(signal_file, 1001, 1001)
        docker_util.start_container(docker_client, image.reference)
        assert_healthy(docker_client)
        names = [row[0] for row in connection.query(
            'SELECT datname FROM pg_database')]
        assert 'shop' in names
        assert connection.query('SELECT COUNT(*) FROM items') == [(500,)]
        # Recovery ends (replaying the WAL the backup carries) and the
        # server is a primary again.
        deadline = time.monotonic() + 60
        while connection.query('SELECT pg_is_in_recovery()')[0][0]:
            assert time.monotonic() < deadline, images.logs(docker_client)
            time.sleep(2)
        assert not signal_file.exists()
    finally:
        agent.clear()
        for container in ('database', 'db_backup', 'db_restore'):
            docker_util.remove_container(docker_client, container)


def test_backup_image_only_embedded_is_not_found(docker_client,
                                                 local_registry):
    """Why backup images need a registry in Trove 26: an image the guest's
    dockerd has locally, under the name the agent is configured with, is
    still looked up in the registry first, and refused when absent
    there."""
    from trove.common import exception
    from trove.guestagent.datastore import service as base_service
    from trove.guestagent.datastore.mariadb import service

    backup_image = build_backup_image('mariadb:11.8')
    with open(backup_image.path, 'rb') as archive_file:
        loaded = docker_client.images.load(archive_file.read())
    name = f'{local_registry.address}/trovestack/db-backup-only-local'
    loaded[0].tag(name, tag='11.8')
    app = service.MariaDBApp(base_service.BaseDbStatus(docker_client),
                             docker_client)
    from trove.common import cfg

    cfg.CONF.set_override('datastore_manager', 'mariadb')
    cfg.CONF.set_override('backup_docker_image', name, group='mariadb')
    try:
        with pytest.raises(exception.TroveError,
                           match='No backup image found'):
            app.get_backup_image('11.8')
    finally:
        cfg.CONF.clear_override('datastore_manager')
        cfg.CONF.clear_override('backup_docker_image', group='mariadb')
        docker_client.images.remove(f'{name}:11.8')
