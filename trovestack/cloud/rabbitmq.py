"""A RabbitMQ broker of our own: Debian's rabbitmq-server, started by hand.

One broker per data directory.  Its configuration, database, logs, Erlang
cookie, pid files and generated password all live there, and it runs its
own epmd and distribution port, so several brokers coexist (concurrent test
clouds, a broker inside a network namespace).  The broker has one user and
one vhost of our choosing; RabbitMQ's default ``guest`` user is never
created.  Its epmd and server are programs of a supervisor: the cloud's
(``configure(supervisor=...)``) or one of its own in the data directory.
"""

import dataclasses
import hashlib
import logging
import os
import pathlib
import secrets
import shutil
import subprocess
import urllib.parse
from collections.abc import Iterable

from trovestack.cloud import LocalCloudError
from trovestack.cloud import processes
from trovestack.cloud import supervision
from trovestack.common import files
from trovestack.common import netns as netns_mod

LOG = logging.getLogger(__name__)

SERVER = pathlib.Path('/usr/lib/rabbitmq/bin/rabbitmq-server')
# The CLI itself, not Debian's wrapper (which runs it as the rabbitmq user,
# whose home holds another Erlang cookie than this broker's HOME).
CTL = SERVER.with_name('rabbitmqctl')
STATE_FILE = 'broker.json'
READY_LINE = 'Server startup complete'


class BrokerError(LocalCloudError):
    """The broker could not be started or stopped."""


@dataclasses.dataclass
class Broker:
    """A running broker: where it listens and how to log in to it."""

    host: str
    port: int
    user: str
    password: str = dataclasses.field(repr=False)
    vhost: str
    data_dir: pathlib.Path

    def transport_url(self) -> str:
        """oslo.messaging's transport_url for this broker."""
        host = f'[{self.host}]' if ':' in self.host else self.host
        quote = urllib.parse.quote
        return (f'rabbit://{quote(self.user, safe="")}:'
                f'{quote(self.password, safe="")}@{host}:{self.port}/'
                f'{quote(self.vhost, safe="")}')


@dataclasses.dataclass
class _Record:
    """What a data directory remembers about its broker (mode 0600)."""

    host: str
    port: int
    user: str
    password: str = dataclasses.field(repr=False)
    vhost: str
    epmd_port: int
    dist_port: int
    netns: str | None = None
    # The state directory of the supervisor the broker runs under (None:
    # its own, in data_dir).
    supervisor: str | None = None

    def broker(self, data_dir: pathlib.Path) -> Broker:
        return Broker(self.host, self.port, self.user, self.password,
                      self.vhost, data_dir)


class _Paths:
    def __init__(self, data_dir: pathlib.Path | str) -> None:
        self.root = pathlib.Path(data_dir).absolute()
        self.state = self.root / STATE_FILE
        self.config = self.root / 'rabbitmq.conf'
        self.plugins = self.root / 'enabled_plugins'
        self.mnesia = self.root / 'mnesia'
        self.logs = self.root / 'log'
        self.log = self.logs / 'rabbit.log'
        self.output = self.logs / 'server.out'
        self.epmd_log = self.logs / 'epmd.log'


def _load(paths: _Paths) -> '_Record | None':
    return files.load_record(paths.state, _Record)


def _save(paths: _Paths, record: _Record) -> None:
    files.save_record(paths.state, record)


def render_config(host: str, port: int, user: str, password: str,
                  vhost: str) -> str:
    """rabbitmq.conf: one listener on host:port and our user and vhost as
    the defaults RabbitMQ creates on first boot (instead of guest)."""
    listener = f'[{host}]:{port}' if ':' in host else f'{host}:{port}'
    return '\n'.join([
        f'listeners.tcp.1 = {listener}',
        f'default_user = {user}',
        f'default_pass = {password}',
        f'default_vhost = {vhost}',
        'default_permissions.configure = .*',
        'default_permissions.read = .*',
        'default_permissions.write = .*',
        'loopback_users = none',
        '',
    ])


def _node_name(paths: _Paths) -> str:
    digest = hashlib.sha1(str(paths.root).encode()).hexdigest()[:12]
    return f'trovestack-{digest}@localhost'


def server_env(paths: '_Paths', record: '_Record') -> dict[str, str]:
    """The environment rabbitmq-server (and its epmd) run with."""
    return {
        # The start script execs the Erlang VM instead of waiting on it:
        # the supervised process is the broker itself.
        'RUNNING_UNDER_SYSTEMD': 'true',
        'HOME': str(paths.root),
        # Ignore /etc/rabbitmq: everything comes from the data directory.
        'RABBITMQ_CONF_ENV_FILE': str(paths.root / 'rabbitmq-env.conf'),
        'RABBITMQ_CONFIG_FILE': str(paths.config),
        'RABBITMQ_ADVANCED_CONFIG_FILE': str(paths.root / 'advanced.config'),
        'RABBITMQ_ENABLED_PLUGINS_FILE': str(paths.plugins),
        'RABBITMQ_NODENAME': _node_name(paths),
        'RABBITMQ_MNESIA_BASE': str(paths.mnesia),
        'RABBITMQ_LOG_BASE': str(paths.logs),
        'RABBITMQ_LOGS': str(paths.log),
        'RABBITMQ_DIST_PORT': str(record.dist_port),
        'ERL_EPMD_PORT': str(record.epmd_port),
        # Our epmd runs already; distribution on loopback only.
        'RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS':
            '-start_epmd false -kernel inet_dist_use_interface {127,0,0,1}',
    }


EPMD, SERVER_PROGRAM = 'rabbitmq-epmd', 'rabbitmq'


def _supervisor(paths: _Paths,
                record: '_Record | None') -> supervision.Supervisor:
    return supervision.for_record(
        record and record.supervisor,  # type: ignore[arg-type]  # None: own
        paths.root, paths.logs)


def programs(data_dir: pathlib.Path | str,
             offset: int = 0) -> list[supervision.Program]:
    """The broker's processes, declared: its epmd, then the server, ready
    once our user logs in (a broker inside a namespace: once its log says
    so after ``offset``, the log's size before this start)."""
    paths = _Paths(data_dir)
    # configure() saved it
    record: _Record = _load(paths)  # type: ignore[assignment]
    env = server_env(paths, record)
    broker = record.broker(paths.root)

    def ready() -> bool:
        if record.netns:
            return _ready_line_seen(paths.log, offset)
        try:
            queue_consumers(broker, [])
        except BrokerError:
            return False
        return True
    return [
        supervision.Program(
            EPMD, netns_mod.inside(record.netns, [
                'epmd', '-port', str(record.epmd_port), '-address',
                '127.0.0.1']),
            ready=lambda: _epmd_answers(record), env=env,
            log=str(paths.epmd_log)),
        supervision.Program(
            SERVER_PROGRAM, netns_mod.inside(record.netns, [str(SERVER)]),
            ready=ready, env=env,
            needs=(EPMD,), log=str(paths.output), stop_timeout=30.0),
    ]


def is_running(data_dir: pathlib.Path | str) -> bool:
    """True when the broker of data_dir is running."""
    return server_pid(data_dir) is not None


def stop(data_dir: pathlib.Path | str) -> bool:
    """Stop the broker of data_dir and its epmd; True when it was running.
    A broker with a supervisor of its own stops it too."""
    paths = _Paths(data_dir)
    record = _load(paths)
    supervisor = _supervisor(paths, record)
    was_running = supervisor.stop(SERVER_PROGRAM)
    supervisor.stop(EPMD)
    if record is None or not record.supervisor:
        supervisor.shutdown()
    return was_running


def _new_record(paths: _Paths, old: '_Record | None', host: str, port: int,
                user: str, vhost: str, netns: str | None,
                supervisor: str | None = None) -> '_Record':
    """The settings of this start: old password and ports when possible."""
    if old is not None and paths.mnesia.exists() and \
            (old.user, old.vhost) != (user, vhost):
        raise BrokerError(
            f'the broker in {paths.root} was created with user {old.user!r} '
            f'and vhost {old.vhost!r}; stop it and remove the directory to '
            f'use user {user!r} and vhost {vhost!r}')
    if old is None and paths.mnesia.exists():
        # A database whose password is lost: start over.
        shutil.rmtree(paths.mnesia)
    password = old.password if old else secrets.token_urlsafe(24)
    ports = processes.allocate_ports(
        ['epmd', 'dist'], taken=[port],
        existing={'epmd': old.epmd_port, 'dist': old.dist_port} if old
        else None,
        usable=lambda wanted: netns or processes.port_is_free(wanted))
    return _Record(host=host, port=port, user=user, password=password,
                   vhost=vhost, epmd_port=ports['epmd'],
                   dist_port=ports['dist'],
                   netns=netns, supervisor=supervisor)


def _epmd_answers(record: '_Record') -> bool:
    argv = netns_mod.inside(record.netns, [
        'epmd', '-port', str(record.epmd_port), '-names'])
    return subprocess.run(argv, capture_output=True,
                          check=False).returncode == 0


def _ready_line_seen(log: pathlib.Path, offset: int) -> bool:
    try:
        with open(log, 'rb') as handle:
            handle.seek(offset)
            return READY_LINE.encode() in handle.read()
    except FileNotFoundError:
        return False


def configure(data_dir: pathlib.Path | str, host: str = '127.0.0.1',
              port: int = 5672, *, user: str = 'trove', vhost: str = 'trove',
              netns: str | None = None,
              supervisor: pathlib.Path | str | None = None) -> Broker:
    """The broker start() will run for data_dir, its settings saved there
    first (password generated now if new), so that services can be
    configured with its transport_url before it runs.  When the broker runs
    already, returns it as it is."""
    paths = _Paths(data_dir)
    old = _load(paths)
    if old is not None and is_running(paths.root):
        if (old.host, old.port, old.netns) != (host, port, netns):
            LOG.warning('The broker of %s already runs on %s:%s; keeping it',
                        paths.root, old.host, old.port)
        return old.broker(paths.root)
    for directory in (paths.root, paths.logs):
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    record = _new_record(paths, old, host, port, user, vhost, netns,
                         str(supervisor) if supervisor else None)
    if record != old:
        _save(paths, record)
    files.write_atomic(paths.config, render_config(
        host, port, user, record.password, vhost), mode=0o600)
    files.write_atomic(paths.plugins, '[].\n')
    return record.broker(paths.root)


def start(data_dir: pathlib.Path | str, host: str = '127.0.0.1',
          port: int = 5672, *, user: str = 'trove', vhost: str = 'trove',
          netns: str | None = None, timeout: float = 60.0) -> Broker:
    """Start the broker of data_dir on host:port (inside network namespace
    ``netns`` when given), under a supervisor of its own in data_dir, and
    return it once it accepts connections.

    Idempotent: when the broker of data_dir runs already, returns it as it
    is.  The password is generated on first use and kept in data_dir.
    """
    paths = _Paths(data_dir)
    if is_running(paths.root):
        return configure(paths.root, host, port, user=user, vhost=vhost,
                         netns=netns)
    check_startable(host, port, netns)
    stop(paths.root)  # whatever a crashed start left behind
    broker = configure(paths.root, host, port, user=user, vhost=vhost,
                       netns=netns)
    supervisor = supervision.Supervisor(paths.root, paths.logs)
    LOG.info('Starting RabbitMQ on %s:%s (data in %s)', host, port,
             paths.root)
    try:
        if netns:
            subprocess.run(netns_mod.inside(netns, ['ip', 'link', 'set', 'lo',
                                                   'up']),
                           check=True, capture_output=True)
        nodes = programs(paths.root, log_size(paths.root))
        supervisor.declare(nodes)
        supervision.start_in_order(
            nodes, lambda program: supervisor.start(program, timeout))
    except supervision.SupervisionError as exc:
        stop(paths.root)
        raise BrokerError(str(exc)) from None
    except BaseException:
        stop(paths.root)
        raise
    return broker


def check_startable(host: str, port: int, netns: str | None = None) -> None:
    """BrokerError when rabbitmq-server is missing or its port taken."""
    if not SERVER.exists():
        raise BrokerError(f'{SERVER} not found: install the Debian package '
                          f'rabbitmq-server (tools/install-test-deps)')
    if not netns and not processes.port_is_free(port, host):
        raise BrokerError(f'port {port} (rabbitmq) on {host} is in use')


def log_size(data_dir: pathlib.Path | str) -> int:
    """The size of the broker's log now (a start's ready line comes after
    it)."""
    log = _Paths(data_dir).log
    return log.stat().st_size if log.exists() else 0


def load(data_dir: pathlib.Path | str) -> Broker | None:
    """The broker data_dir is configured for (running or not), or None."""
    paths = _Paths(data_dir)
    record = _load(paths)
    return record.broker(paths.root) if record else None


def server_pid(data_dir: pathlib.Path | str) -> int | None:
    """The pid of the running broker of data_dir, or None."""
    paths = _Paths(data_dir)
    record = _load(paths)
    if record is None:
        return None
    return _supervisor(paths, record).pid(SERVER_PROGRAM)


def queue_consumers(broker: Broker, queues: Iterable[str],
                    timeout: float = 2.0) -> dict[str, int | None]:
    """{queue: number of consumers, or None when the queue does not exist},
    after logging in to the broker as its user; BrokerError when the broker
    can not be reached or refuses the login.  A queue with a consumer is a
    service listening on its RPC topic."""
    import amqp

    counts = {}
    try:
        with amqp.Connection(
                f'{broker.host}:{broker.port}', userid=broker.user,
                password=broker.password, virtual_host=broker.vhost,
                connect_timeout=timeout, read_timeout=timeout,
                write_timeout=timeout) as conn:
            for queue in queues:
                channel = conn.channel()
                try:
                    counts[queue] = channel.queue_declare(
                        queue, passive=True).consumer_count
                except amqp.exceptions.NotFound:
                    counts[queue] = None
                    continue
                channel.close()
    except (OSError, amqp.exceptions.AMQPError) as exc:
        raise BrokerError(f'RabbitMQ on {broker.host}:{broker.port} did not '
                          f'answer: {exc}') from exc
    return counts


def list_queues(data_dir: pathlib.Path | str,
                timeout: float = 60.0) -> list[tuple[str, int, int]]:
    """[(queue, messages waiting, consumers)] of the running broker of
    data_dir's vhost, from rabbitmqctl; BrokerError when it can not tell.
    A guest agent's queue (``guestagent.<instance id>``) with messages
    waiting is an agent that does not take its calls; without a consumer,
    one that is not connected."""
    paths = _Paths(data_dir)
    record = _load(paths)
    if record is None or not is_running(paths.root):
        raise BrokerError(f'no running broker in {paths.root}')
    argv = netns_mod.inside(record.netns, [
        str(CTL), 'list_queues', '-p', record.vhost, '--no-table-headers',
        '-q', 'name', 'messages', 'consumers'])
    try:
        result = subprocess.run(
            argv, env={**os.environ, **server_env(paths, record)},
            capture_output=True, text=True, timeout=timeout,
            stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BrokerError(f'rabbitmqctl list_queues: {exc}') from exc
    if result.returncode != 0:
        raise BrokerError('rabbitmqctl list_queues failed: '
                          + ' '.join(result.stderr.split())[:300])
    queues = []
    for line in result.stdout.splitlines():
        fields = line.split('\t')
        if len(fields) == 3 and fields[1].isdigit() and fields[2].isdigit():
            queues.append((fields[0], int(fields[1]), int(fields[2])))
    return queues
