"""A Trove instance's lifecycle through the real APIs, as one function.

:func:`run_lifecycle` creates an instance (Trove puts it on its
management network), waits for ACTIVE, creates a database and a user,
lists the databases, checks that the database answers on the instance's
address from inside the cloud's namespace (a MySQL/MariaDB handshake or a
PostgreSQL TCP connect), deletes the instance and checks that the nova
server and every port it had are gone.  Used by the compute cloud's test
and by the devstack plugin's proof on the same cloud.

Creating, waiting for ACTIVE, explaining a failure and deleting are
:mod:`trovestack.trove.instances`' (``trovestack instance up/down`` run the
same code); on failure :class:`LifecycleError` says where it stopped,
with the instance's fault, the tail of the guest's console log and of the
task manager's log.
"""

import dataclasses
import secrets
import subprocess

from trovestack.trove import instances

PORTS = {'mysql': 3306, 'mariadb': 3306, 'postgresql': 5432}


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


class _Run(instances.Tracker):
    """The library's instance tracker; its failures are LifecycleErrors."""

    def __init__(self, where, name, progress):
        super().__init__(where.conn, name, label='lifecycle',
                         evidence=instances.Evidence(
                             logs=tuple(where.logs),
                             instances_dir=where.instances_dir),
                         progress=progress)
        self.where = where

    def fail(self, message):
        raise LifecycleError(f'stopped at {self.stage}: {message}\n'
                             f'{self.diagnostics()}')


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

    ``where``: :class:`Where`; ``flavor``: id or name; ``nics``: networks
    (names or ids) besides Trove's management network, which Trove adds
    itself (default: none); ``volume_size``: GB of the Cinder volume for
    the data (None: Trove's volume support is off, the flavor's ephemeral
    disk holds it).  Returns the timeline {stage: seconds since start};
    raises :class:`LifecycleError`.
    """
    name = name or f'lifecycle-{datastore}-{secrets.token_hex(3)}'
    run = _Run(where, name, progress)
    instances.create_instance(run, datastore=datastore, version=version,
                              flavor=flavor, nics=nics or (),
                              volume_size=volume_size)
    try:
        run.wait_active(timeout)
        address = _databases_and_address(run, datastore)
        _answers(run, datastore, address)
    except BaseException:
        _delete_quietly(run)
        raise
    instances.remove(run)
    return run.timeline


def _delete_quietly(run):
    """Delete after a failure without hiding it: Trove refuses to delete an
    instance in BUILD, so its status is reset first."""
    try:
        instances.remove(run, reset=True)
    except Exception as exc:  # noqa: BLE001
        run.say(f'delete after the failure failed: {exc}')


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
    run.wait(listed, 300, 'database and user listed', interval=5)
    run.mark('database and user listed')
    instance = trove.instances.get(instance_id)
    addresses = instances.addresses_of(instance)
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
            run.say(f'{address}:{port}: {error}')
            return False
        if port == 3306:
            # A MySQL protocol greeting: 3-byte length, sequence 0,
            # protocol version 10, then the server version.
            return len(data) > 5 and data[4] == 10
        return True
    run.wait(greeted, 180, f'database answering on {address}:{port}',
             interval=5)
    run.mark(f'database answers on {address}:{port} in the namespace')
