"""A Trove instance's lifecycle through the real APIs, as one function.

:func:`run_lifecycle` creates an instance (Trove puts it on its
management network), waits for ACTIVE, creates a database and a user,
lists the databases, checks that the database answers on the instance's
address from inside the cloud's namespace (a MySQL/MariaDB handshake or a
PostgreSQL TCP connect), deletes the instance and checks that the nova
server and every port it had are gone.  Used by the compute cloud's test
and by the devstack plugin's proof on the same cloud.

On failure :class:`LifecycleError` says where it stopped, with the
instance's fault, the tail of the guest's console log and of the task
manager's log.
"""

import dataclasses
import pathlib
import secrets
import subprocess
import time

from trovestack import connection

PORTS = {'mysql': 3306, 'mariadb': 3306, 'postgresql': 5432}
TAIL = 3000


class LifecycleError(AssertionError):
    """A stage of the lifecycle failed; the message tells which and why."""


@dataclasses.dataclass
class Where:
    """What the lifecycle needs of the cloud."""

    conn: object                 # openstacksdk admin connection
    namespace: str               # network namespace guests' addresses live in
    logs: tuple = ()             # log files whose tails explain a failure
    instances_dir: str = ''      # nova's instances_path (console.log)


def where_of(compute_cloud):
    """:class:`Where` of the ``compute_cloud`` fixture."""
    layout = compute_cloud.cloud.layout
    return Where(conn=compute_cloud.connection(),
                 namespace=compute_cloud.namespace,
                 logs=(layout.log_file('trove-taskmanager'),
                       layout.log_file('trove-conductor'),
                       compute_cloud.layer.paths.log_dir / 'nova-compute.log'),
                 instances_dir=str(compute_cloud.layer.paths.instances_dir))


def _tail(text, size=TAIL):
    return text[-size:] if text else ''


class _Run:
    def __init__(self, where, progress):
        self.where = where
        self.conn = where.conn
        self.trove = connection.trove_client(where.conn)
        self.timeline = {}
        self.started = time.monotonic()
        self.progress = progress
        self.stage = 'start'
        self.instance_id = None
        self.server_id = None

    def mark(self, stage):
        self.timeline[stage] = round(time.monotonic() - self.started, 1)
        self.stage = stage
        self.progress(f'lifecycle: {stage} at {self.timeline[stage]} s')

    def fail(self, message):
        raise LifecycleError(f'stopped at {self.stage}: {message}\n'
                             f'{self.diagnostics()}')

    def diagnostics(self):
        """Instance fault, console log and service log tails."""
        parts = []
        if self.instance_id:
            try:
                instance = self.trove.instances.get(self.instance_id)
                parts.append(f'instance status {instance.status}, fault: '
                             f'{getattr(instance, "fault", None)}')
                self.server_id = self.server_id or getattr(
                    instance, 'server_id', None)
            except Exception as exc:  # noqa: BLE001 - report, go on
                parts.append(f'instance {self.instance_id}: {exc}')
        if self.server_id:
            try:
                server = self.conn.compute.get_server(self.server_id)
                parts.append(f'server {server.id} {server.status} '
                             f'fault: {getattr(server, "fault", None)}')
                console = self.conn.compute.get_server_console_output(
                    server)['output']
                parts.append('console (nova):\n' + _tail(console))
            except Exception as exc:  # noqa: BLE001
                parts.append(f'server {self.server_id}: {exc}')
            log = pathlib.Path(self.where.instances_dir, self.server_id,
                               'console.log')
            if log.exists():
                parts.append(f'{log}:\n' + _tail(log.read_text(
                    errors='replace')))
        for log in self.where.logs:
            path = pathlib.Path(log)
            if path.exists():
                parts.append(f'{path} (tail):\n' + _tail(
                    path.read_text(errors='replace'), 1500))
        return '\n'.join(parts)


def _wait(run, check, timeout, what, interval=10):
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            run.fail(f'{what} not within {timeout} s')
        time.sleep(interval)


def _handshake(namespace, address, port, datastore):
    """The first bytes the database sends on a TCP connect from inside the
    namespace (MySQL/MariaDB greet first; PostgreSQL waits: empty)."""
    code = ('import socket,sys\n'
            's=socket.create_connection((sys.argv[1],int(sys.argv[2])),10)\n'
            's.settimeout(10)\n'
            'data=b""\n'
            'try:\n data=s.recv(200)\nexcept socket.timeout:\n pass\n'
            'sys.stdout.write(data.hex())\n')
    result = subprocess.run(
        ['ip', 'netns', 'exec', namespace, 'python3', '-c', code, address,
         str(port)], capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        return None, result.stderr.strip()[-300:]
    return bytes.fromhex(result.stdout.strip()), ''


def run_lifecycle(where, *, datastore, version, flavor, name=None,
                  nics=None, volume_size=None, timeout=3600, progress=print):
    """Create -> ACTIVE -> database, user, list -> handshake -> delete.

    ``where``: :class:`Where`; ``flavor``: id or name; ``nics``: extra
    networks (Trove adds its management network itself); ``volume_size``:
    GB of the Cinder volume for the data (None: Trove's volume support is
    off, the flavor's ephemeral disk holds it).  Returns the timeline
    {stage: seconds since start}; raises :class:`LifecycleError`.
    """
    run = _Run(where, progress)
    trove, conn = run.trove, run.conn
    flavor_obj = conn.compute.find_flavor(flavor, ignore_missing=False)
    name = name or f'lifecycle-{datastore}-{secrets.token_hex(3)}'
    instance = trove.instances.create(
        name, flavor_obj.id, datastore=datastore,
        datastore_version=version, nics=nics or [],
        volume={'size': volume_size} if volume_size else None)
    run.instance_id = instance.id
    run.mark('created')
    try:
        _active(run, timeout)
        address = _databases_and_address(run, datastore)
        _answers(run, datastore, address)
    except BaseException:
        _delete_quietly(run)
        raise
    _delete(run)
    return run.timeline


def _delete_quietly(run):
    """Delete after a failure without hiding it: Trove refuses to delete an
    instance in BUILD, so its status is reset first."""
    try:
        run.trove.instances.reset_status(run.instance_id)
    except Exception as exc:  # noqa: BLE001 - the failure says more
        run.progress(f'lifecycle: reset-status failed: {exc}')
    try:
        _delete(run)
    except Exception as exc:  # noqa: BLE001
        run.progress(f'lifecycle: delete after the failure failed: {exc}')


def _active(run, timeout):
    seen = []

    def active():
        instance = run.trove.instances.get(run.instance_id)
        run.server_id = getattr(instance, 'server_id', None) or run.server_id
        if not seen or seen[-1] != instance.status:
            seen.append(instance.status)
            run.mark(f'status {instance.status}')
        if instance.status == 'ERROR':
            run.fail('instance went to ERROR')
        return instance.status == 'ACTIVE'

    _wait(run, active, timeout, 'ACTIVE')


def _databases_and_address(run, datastore):
    trove, instance_id = run.trove, run.instance_id
    password = secrets.token_urlsafe(12)
    trove.databases.create(instance_id, [{'name': 'lifecycle_db'}])
    trove.users.create(instance_id, [{
        'name': 'lifecycle_user', 'password': password,
        'databases': [{'name': 'lifecycle_db'}]}])
    run.mark('database and user created')

    def listed():
        names = [db.name for db in trove.databases.list(instance_id)]
        users = [user.name for user in trove.users.list(instance_id)]
        return 'lifecycle_db' in names and 'lifecycle_user' in users
    _wait(run, listed, 300, 'database and user listed', interval=5)
    run.mark('database and user listed')
    instance = trove.instances.get(instance_id)
    addresses = [entry['address'] for entry in
                 getattr(instance, 'addresses', None) or []
                 if entry.get('address')] or list(
                     getattr(instance, 'ip', None) or [])
    if not addresses:
        # Trove shows no address of its management network to users; an
        # instance on that network alone is reached at its server's.
        servers = [run.conn.compute.get_server(run.server_id)] \
            if run.server_id else list(run.conn.compute.servers(
                all_projects=True, name=f'^{instance.name}$'))
        addresses = [entry['addr'] for server in servers for entries in
                     (server.addresses or {}).values() for entry in entries]
    if not addresses:
        run.fail('the instance has no address')
    return addresses[0]


def _answers(run, datastore, address):
    port = PORTS[datastore]

    def greeted():
        data, error = _handshake(run.where.namespace, address, port,
                                 datastore)
        if data is None:
            run.progress(f'lifecycle: {address}:{port}: {error}')
            return False
        if port == 3306:
            # A MySQL protocol greeting: 3-byte length, sequence 0,
            # protocol version 10, then the server version.
            return len(data) > 5 and data[4] == 10
        return True
    _wait(run, greeted, 180, f'database answering on {address}:{port}',
          interval=5)
    run.mark(f'database answers on {address}:{port} in the namespace')


def _delete(run):
    trove, conn = run.trove, run.conn
    if run.server_id is None:
        try:
            run.server_id = getattr(trove.instances.get(run.instance_id),
                                    'server_id', None)
        except Exception:  # noqa: BLE001 - the deletion below says more
            pass
    ports = [port.id for port in conn.network.ports(
        device_id=run.server_id)] if run.server_id else []
    run.stage = 'delete'
    trove.instances.delete(run.instance_id)

    def gone():
        try:
            trove.instances.get(run.instance_id)
        except Exception as exc:  # noqa: BLE001 - NotFound is the goal
            if getattr(exc, 'code', None) == 404 or \
                    type(exc).__name__ == 'NotFound':
                return True
            raise
        return False
    _wait(run, gone, 900, 'instance deleted', interval=5)
    if run.server_id:
        _wait(run, lambda: conn.compute.find_server(
            run.server_id, ignore_missing=True) is None, 300,
            'nova server deleted', interval=5)
        _wait(run, lambda: not any(
            conn.network.find_port(port, ignore_missing=True)
            for port in ports), 300, 'ports deleted', interval=5)
    run.mark(f'deleted (server and {len(ports)} port(s) gone)')
