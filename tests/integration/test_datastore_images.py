"""Datastore images and the local registry against the real parts:
Debian's docker-registry and skopeo, and a Docker daemon started by hand
running each image the way Trove 26's guest agent does (its own
docker utilities, health check, environment, volumes, command, user and
configuration files)."""

import base64
import hashlib
import hmac
import io
import json
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import types
import urllib.parse
import urllib.request

import pytest

from trovestack.cloud import registry
from trovestack.images.datastore import archive
from trovestack.images.datastore import backup
from trovestack.images.datastore import builder
from trovestack.images.datastore import datastores

V2S2 = 'application/vnd.docker.distribution.manifest.v2+json'
READ_URL = ('import sys, urllib.request\n'
            'print(urllib.request.urlopen(sys.argv[1]).read().decode())')
# Resolved at import, before the test session isolates XDG_CACHE_HOME:
# the images are cached between runs like the guest image.
IMAGE_CACHE = builder.default_output_dir()
HEALTHY_TIMEOUT = 300
UID = 1001


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def tiny_archive(path):
    """A one-file docker-archive, written by our own writer."""
    layer = path.parent / 'layer.tar'
    with tarfile.open(layer, 'w') as tar:
        data = b'hello\n'
        info = tarfile.TarInfo('hello.txt')
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    config = archive.ImageConfig(entrypoint=['/bin/true'], cmd=[], env={})
    return archive.write_docker_archive([layer], path, 'trovestack/tiny',
                                        '1.0', config)


def get(url, accept=None):
    request = urllib.request.Request(url)
    if accept:
        request.add_header('Accept', accept)
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.headers, json.load(response)


@pytest.mark.skipif(not shutil.which('docker-registry'),
                    reason='Debian package docker-registry not installed')
def test_registry_push_then_read_manifest(tmp_path):
    image_id = tiny_archive(tmp_path / 'tiny.tar')
    data_dir = tmp_path / 'registry'
    reg = registry.start(data_dir, port=free_port())
    try:
        assert registry.start(data_dir).pid == reg.pid
        pushed = registry.push(tmp_path / 'tiny.tar', reg.address,
                               'trovestack/tiny', '1.0')
        assert pushed.reference == f'{reg.address}/trovestack/tiny:1.0'
        headers, manifest = get(
            f'{reg.url}/v2/trovestack/tiny/manifests/1.0', accept=V2S2)
        assert manifest['mediaType'] == V2S2
        assert manifest['config']['digest'] == image_id
        assert headers['Docker-Content-Digest'] == pushed.digest
        # Pushed again only when the registry lacks that image id.
        assert archive.image_id(tmp_path / 'tiny.tar') == image_id
        assert registry.config_digest(reg.address, 'trovestack/tiny',
                                      '1.0') == image_id
        assert backup.push_unless_there(
            tmp_path / 'tiny.tar', reg.address, 'trovestack/tiny',
            '1.0') is None
        assert registry.config_digest(reg.address, 'trovestack/tiny',
                                      '2.0') is None
        assert backup.push_unless_there(
            tmp_path / 'tiny.tar', reg.address, 'trovestack/tiny',
            '2.0').reference.endswith('/trovestack/tiny:2.0')
        _, catalog = get(f'{reg.url}/v2/_catalog')
        assert 'trovestack/tiny' in catalog['repositories']
        _, tags = get(f'{reg.url}/v2/trovestack/tiny/tags/list')
        assert sorted(tags['tags']) == ['1.0', '2.0']
    finally:
        assert registry.stop(data_dir)
    assert not registry.is_running(data_dir)
    # The store survives a restart.
    reg = registry.start(data_dir, port=free_port())
    try:
        _, tags = get(f'{reg.url}/v2/trovestack/tiny/tags/list')
        assert sorted(tags['tags']) == ['1.0', '2.0']
    finally:
        registry.stop(data_dir)


@pytest.mark.skipif(not shutil.which('docker-registry') or os.geteuid(),
                    reason='needs root and the docker-registry package')
def test_registry_inside_a_network_namespace(tmp_path):
    """Where guests reach it: bound in a namespace of our own, pushed to
    from inside it; the host's own port 5000 is not involved."""
    from trovestack.common import netns

    tiny_archive(tmp_path / 'tiny.tar')
    data_dir = tmp_path / 'registry'
    with netns.namespace(netns.owned_name('tsreg')) as ns:
        reg = registry.start(data_dir, netns=ns.name)
        try:
            assert (reg.address, reg.netns) == ('127.0.0.1:5000', ns.name)
            assert registry.start(data_dir, netns=ns.name).pid == reg.pid
            assert reg.pid in ns.pids()
            pushed = registry.push(tmp_path / 'tiny.tar', reg.address,
                                   'trovestack/tiny', '1.0', netns=ns.name)
            tags = ns.run([sys.executable, '-c', READ_URL,
                           f'{reg.url}/v2/trovestack/tiny/tags/list'])
            assert json.loads(tags.stdout)['tags'] == ['1.0']
            assert pushed.digest.startswith('sha256:')
        finally:
            assert registry.stop(data_dir)


@pytest.mark.skipif(not shutil.which('docker-registry'),
                    reason='Debian package docker-registry not installed')
def test_pushed_image_pulls_into_dockerd(tmp_path, docker_client):
    """What skopeo pushes (gzipped layers) is what Docker 20.10 (the
    guest's, bookworm's docker.io) pulls."""
    image_id = tiny_archive(tmp_path / 'tiny.tar')
    data_dir = tmp_path / 'registry'
    reg = registry.start(data_dir, port=free_port())
    try:
        registry.push(tmp_path / 'tiny.tar', reg.address, 'trovestack/tiny',
                      '1.0')
        # 127.0.0.0/8 is an insecure registry to dockerd by default.
        pulled = docker_client.images.pull(f'{reg.address}/trovestack/tiny',
                                           tag='1.0')
        assert pulled.id == image_id
    finally:
        registry.stop(data_dir)


# --- the images under a real dockerd, driven by Trove's own code ---------

def _mounts_under(path):
    prefix = str(path).rstrip('/') + '/'
    with open('/proc/self/mounts') as mounts:
        return [line.split()[1] for line in mounts
                if line.split()[1].startswith(prefix)]


class Dockerd:
    """dockerd (and its containerd) with every path under one directory:
    no bridge, no iptables, nothing shared with a system dockerd."""

    def __init__(self, root):
        self.root = pathlib.Path(root)
        self.socket = self.root / 'docker.sock'
        self.pidfile = self.root / 'docker.pid'
        self.process = None

    def start(self, timeout=60):
        log = open(self.root / 'dockerd.log', 'wb')
        self.process = subprocess.Popen(
            ['dockerd', '--data-root', str(self.root / 'data'),
             '--exec-root', str(self.root / 'exec'),
             '-H', f'unix://{self.socket}', '--pidfile', str(self.pidfile),
             '--bridge=none', '--iptables=false', '--ip-masq=false',
             '--storage-driver=overlay2'],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True)
        log.close()
        import docker

        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError('dockerd exited: ' + self.log_tail())
            try:
                client = docker.DockerClient(base_url=f'unix://{self.socket}')
                client.ping()
                return client
            except Exception as exc:
                if time.monotonic() > deadline:
                    raise RuntimeError('dockerd did not answer: '
                                       + self.log_tail()) from exc
                time.sleep(0.5)

    def log_tail(self):
        text = (self.root / 'dockerd.log').read_text(errors='replace')
        return '\n'.join(text.splitlines()[-15:])

    def stop(self):
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


@pytest.fixture(scope='module')
def docker_client():
    if not shutil.which('dockerd'):
        pytest.skip('Debian package docker.io not installed')
    root = pathlib.Path(tempfile.mkdtemp(prefix='tsd-'))
    daemon = Dockerd(root)
    client = daemon.start()
    try:
        yield client
    finally:
        for container in client.containers.list(all=True):
            container.remove(force=True)
        client.close()
        daemon.stop()
        if not _mounts_under(root):
            shutil.rmtree(root, ignore_errors=True)


def build_and_load(client, name):
    datastore, version = name.split(':')
    image = builder.build(datastore, version, output_dir=IMAGE_CACHE)
    with open(image.path, 'rb') as f:
        loaded = client.images.load(f.read())
    assert [tag for i in loaded for tag in i.tags] == [image.reference]
    return image


def owned_dir(path):
    path.mkdir(parents=True, exist_ok=True)
    os.chown(path, UID, UID)
    return path


def wait_healthy(client, timeout=HEALTHY_TIMEOUT):
    """Poll health as Trove's BaseDbStatus does; the last value seen."""
    from trove.guestagent.utils import docker as docker_util

    deadline = time.monotonic() + timeout
    health = None
    while time.monotonic() < deadline:
        health = docker_util.get_container_health(client)
        if health in ('healthy', 'unhealthy', 'not running'):
            break
        time.sleep(2)
    return health


def logs(client):
    from trove.guestagent.utils import docker as docker_util

    return '\n'.join(docker_util.get_container_logs(client, tail=40))


def trove_config_manager(path, conf_dir, extension):
    """Trove's own ConfigurationManager, pointed at our host paths."""
    from trove.common import stream_codecs
    from trove.guestagent.common import configuration

    codec = (stream_codecs.IniCodec() if extension == 'cnf' else
             stream_codecs.KeyValueCodec(
                 value_quoting=True,
                 bool_case=stream_codecs.KeyValueCodec.BOOL_LOWER,
                 big_ints=True))
    return configuration.ConfigurationManager(
        str(path), UID, UID, codec, requires_root=False,
        override_strategy=configuration.ImportOverrideStrategy(
            str(conf_dir), extension))


def render_trove_config(datastore, version):
    """The config Trove's taskmanager renders for a 1 GiB flavor."""
    from trove.common import template

    datastore_version = types.SimpleNamespace(
        datastore_name=datastore, manager=datastore, name=version,
        version=version)
    return template.SingleInstanceConfigTemplate(
        datastore_version, {'ram': 1024}, 'trovestack-test').render()


@pytest.fixture
def host_dirs():
    """Short host paths (unix sockets live there) standing in for the
    guest's /etc/<db>, socket and data directories."""
    root = pathlib.Path(tempfile.mkdtemp(prefix='tsi-'))
    yield root
    shutil.rmtree(root, ignore_errors=True)


MARIADB_TEMPLATE = '/usr/share/trovestack/mariadb-template'


def start_mariadb(client, image, host, extra_volumes=None, command=None,
                  password=None):
    """MariaDBApp.start_db + the manager's do_prepare, paths rebased
    (``command``: the server's options instead of the manager's;
    ``password``: root's, when it has one already)."""
    from trove.common import constants
    from trove.guestagent.datastore.mariadb import manager
    from trove.guestagent.datastore.mariadb import service
    from trove.guestagent.datastore.mysql_common import service as common
    from trove.guestagent.utils import docker as docker_util

    etc = owned_dir(host / 'etc-mysql')
    owned_dir(etc / 'conf.d')
    owned_dir(etc / 'mariadb.conf.d')
    sockets = owned_dir(host / 'mysqld')
    lib = owned_dir(host / 'lib-mysql')
    owned_dir(lib / 'data')
    data_dir = '/var/lib/mysql/data'
    config = trove_config_manager(etc / 'my.cnf', etc / 'conf.d', 'cnf')
    config.reset_configuration(render_trove_config('mariadb', image.version))
    config.apply_system_override({'mysqld': {'datadir': data_dir}})
    assert common.MYSQL_CONFIG == '/etc/mysql/my.cnf'
    password = password or 'Root-pass-' + os.urandom(6).hex()
    environment = {'MYSQL_ROOT_PASSWORD': password,
                   'MYSQL_INITDB_SKIP_TZINFO': 1,
                   **service.MariaDBApp._extra_envs}
    command = command or manager.Manager.get_start_db_params(None,
                                                             data_dir)
    docker_util.start_container(
        client, f'{image.repository}:{image.version}',
        volumes={
            str(etc): {'bind': '/etc/mysql', 'mode': 'rw'},
            str(sockets): {'bind': '/var/run/mysqld', 'mode': 'rw'},
            str(lib): {'bind': '/var/lib/mysql', 'mode': 'rw'},
            **(extra_volumes or {}),
        },
        network_mode='none', ports={}, user=f'{UID}:{UID}',
        environment=environment, healthcheck=service.MariaDBApp.HEALTHCHECK,
        command=command, privileged=service.MariaDBApp._previledged)
    url = (common.CONNECTION_STR_FORMAT
           % ('root', urllib.parse.quote(password))).replace(
        constants.MYSQL_HOST_SOCKET_PATH, str(sockets))
    return url, lib, password


def mariadb_query(container, password, sql):
    """One value, from the client in the container over its socket (the
    password through the environment, as a user would give it)."""
    result = container.exec_run(
        ['mariadb', '--no-defaults', '-uroot', '-N', '-B', '-e', sql],
        environment={'MYSQL_PWD': password})
    assert result.exit_code == 0, result.output
    return result.output.decode().strip()


def mariadb_sql_works(url):
    """Root over the socket, through Trove's SqlClient and query builders."""
    import sqlalchemy
    from trove.guestagent.common import sql_query
    from trove.guestagent.utils import mysql as mysql_util

    engine = sqlalchemy.create_engine(url)
    try:
        with mysql_util.SqlClient(engine) as client:
            client.execute(sqlalchemy.text(str(
                sql_query.CreateDatabase('trovestack_check'))))
            names = [row[0] for row in client.execute(
                sqlalchemy.text('SHOW DATABASES'))]
            version = client.execute(
                sqlalchemy.text('SELECT VERSION()')).scalar()
    finally:
        engine.dispose()
    assert 'trovestack_check' in names
    return version


def start_postgresql(client, image, host):
    """PgSqlApp.start_db + the manager's do_prepare, paths rebased."""
    from trove.common import constants
    from trove.guestagent.datastore.postgres import service
    from trove.guestagent.utils import docker as docker_util

    etc = owned_dir(host / 'etc-postgresql')
    owned_dir(etc / 'conf.d')
    sockets = owned_dir(host / 'pgsock')
    lib = owned_dir(host / 'lib-postgresql')
    data = owned_dir(lib / 'data')
    datadir = '/var/lib/postgresql/data/pgdata'
    owned_dir(data / 'pgdata')
    owned_dir(data / 'wal_archive')
    assert service.CONFIG_FILE == '/etc/postgresql/postgresql.conf'
    config = trove_config_manager(etc / 'postgresql.conf', etc / 'conf.d',
                                  'conf')
    config.reset_configuration(render_trove_config('postgresql',
                                                   image.version))
    config.apply_system_override({'data_directory': datadir})
    config.apply_system_override({'hba_file': service.HBA_CONFIG_FILE})
    hba = etc / 'pg_hba.conf'
    original = service.HBA_CONFIG_FILE
    service.HBA_CONFIG_FILE = str(hba)
    try:
        service.PgSqlApp.apply_access_rules(types.SimpleNamespace(
            database_service_uid=UID, database_service_gid=UID))
    finally:
        service.HBA_CONFIG_FILE = original
    password = 'Pg-pass-' + os.urandom(6).hex()
    docker_util.start_container(
        client, f'{image.repository}:{image.version}',
        volumes={
            str(etc): {'bind': '/etc/postgresql', 'mode': 'rw'},
            str(sockets): {'bind': '/var/run/postgresql', 'mode': 'rw'},
            str(lib): {'bind': '/var/lib/postgresql', 'mode': 'rw'},
            str(data): {'bind': '/var/lib/postgresql/data', 'mode': 'rw'},
        },
        network_mode='none', ports={}, user=f'{UID}:{UID}',
        environment={'POSTGRES_PASSWORD': password, 'PGDATA': datadir},
        healthcheck=service.PgSqlApp.HEALTHCHECK,
        command=f'postgres -c config_file={service.CONFIG_FILE}')
    assert constants.POSTGRESQL_HOST_SOCKET_PATH.endswith('-socket')
    return sockets, datadir, password


def postgresql_sql_works(sockets):
    """As Trove's agent: PostgresConnection over the socket directory."""
    from trove.guestagent.datastore.postgres import service

    connection = service.PostgresConnection('postgres', host=str(sockets))
    connection.execute('CREATE DATABASE trovestack_check')
    names = [row[0] for row in connection.query(
        'SELECT datname FROM pg_database')]
    assert 'trovestack_check' in names
    return connection.query('SHOW server_version')[0][0]


def postgresql_query(container, sql):
    """One value, from psql in the container over its socket."""
    result = container.exec_run(['psql', '-U', 'postgres', '-tAc', sql])
    assert result.exit_code == 0, result.output
    return result.output.decode().strip()


def scram_matches(verifier, password):
    """Whether a SCRAM-SHA-256 verifier (pg_authid.rolpassword) is that of
    password (RFC 5802: StoredKey = H(HMAC(SaltedPassword, 'Client Key')))."""
    method, rest = verifier.split('$', 1)
    iterations_salt, keys = rest.split('$')
    iterations, salt = iterations_salt.split(':')
    stored_key = keys.split(':')[0]
    salted = hashlib.pbkdf2_hmac('sha256', password.encode(),
                                 base64.b64decode(salt), int(iterations))
    client_key = hmac.new(salted, b'Client Key', hashlib.sha256).digest()
    return (method == 'SCRAM-SHA-256' and base64.b64decode(stored_key)
            == hashlib.sha256(client_key).digest())


MARIADB = [name for name in datastores.supported()
           if name.startswith('mariadb:')]
POSTGRESQL = [name for name in datastores.supported()
              if name.startswith('postgresql:')]


@pytest.mark.datastore_image
@pytest.mark.parametrize('name', MARIADB)
def test_mariadb_image_runs_under_trove(docker_client, host_dirs, name):
    from trove.guestagent.utils import docker as docker_util

    image = build_and_load(docker_client, name)
    url, lib, password = start_mariadb(docker_client, image, host_dirs)
    try:
        assert wait_healthy(docker_client) == 'healthy', logs(docker_client)
        version = mariadb_sql_works(url)
        assert version.startswith(image.version + '.'), version
        # Copied from the image's template data directory, not made by
        # mariadb-install-db in the guest; root's password set as the
        # server started (the URL above carries it), nowhere in the logs,
        # and no other password or anonymous account lets anyone in.
        container = docker_client.containers.get('database')
        output = container.logs().decode(errors='replace')
        assert "from the image's template data directory" in output
        assert password not in output
        assert mariadb_query(container, password,
                             "SELECT COUNT(*) FROM mysql.global_priv "
                             "WHERE user = ''") == '0'
        denied = container.exec_run(
            ['mariadb', '--no-defaults', '-uroot', '-pnot-' + password,
             '-e', 'SELECT 1'])
        assert denied.exit_code != 0
        assert b'Access denied' in denied.output
        # What the healthcheck and Trove expect on the data volume.
        cnf = lib / 'data' / '.my-healthcheck.cnf'
        assert cnf.stat().st_uid == UID
        assert oct(cnf.stat().st_mode & 0o777) == '0o600'
        # A restart keeps the data and comes back healthy (auto-upgrade
        # path of an existing data directory).
        docker_util.restart_container(docker_client)
        assert wait_healthy(docker_client) == 'healthy', logs(docker_client)
        mariadb_sql_works(url)
    finally:
        docker_util.remove_container(docker_client)


@pytest.mark.datastore_image
def test_mariadb_image_without_template_runs_install_db(docker_client,
                                                        host_dirs):
    """An image without the template data directory (an empty directory
    mounted over it) falls back to mariadb-install-db."""
    from trove.guestagent.utils import docker as docker_util

    image = build_and_load(docker_client, MARIADB[-1])
    empty = owned_dir(host_dirs / 'no-template')
    url, _, password = start_mariadb(
        docker_client, image, host_dirs,
        extra_volumes={str(empty): {'bind': MARIADB_TEMPLATE, 'mode': 'ro'}})
    try:
        assert wait_healthy(docker_client) == 'healthy', logs(docker_client)
        mariadb_sql_works(url)
        output = docker_client.containers.get('database').logs().decode(
            errors='replace')
        assert "from the image's template" not in output
        assert 'initialising /var/lib/mysql/data' in output
        assert password not in output
    finally:
        docker_util.remove_container(docker_client)


@pytest.mark.datastore_image
@pytest.mark.parametrize('name', POSTGRESQL)
def test_postgresql_image_runs_under_trove(docker_client, host_dirs, name):
    from trove.guestagent.utils import docker as docker_util

    image = build_and_load(docker_client, name)
    sockets, datadir, password = start_postgresql(docker_client, image,
                                                  host_dirs)
    try:
        assert wait_healthy(docker_client) == 'healthy', logs(docker_client)
        version = postgresql_sql_works(sockets)
        assert version.split('.')[0] == image.version, version
        # Trove runs pg_ctl inside the container (reload after overrides).
        docker_util.run_command(docker_client,
                                f'pg_ctl reload -D {datadir}')
        container = docker_client.containers.get('database')
        locales = container.exec_run(['locale', '-a']).output.decode()
        assert 'en_US.utf8' in locales.split()
        # Made from the image's template cluster, not by initdb in the
        # guest, with POSTGRES_PASSWORD as the superuser's password.
        assert "from the image's template cluster" in logs(docker_client)
        verifier = postgresql_query(
            container, "SELECT rolpassword FROM pg_authid "
                       "WHERE rolname = 'postgres'")
        assert scram_matches(verifier, password)
        assert not scram_matches(verifier, 'not-' + password)
        # JIT (LLVM) is left out of the image; the server runs without it.
        assert postgresql_query(container,
                                'SELECT pg_jit_available()') == 'f'
    finally:
        docker_util.remove_container(docker_client)
