"""What the compute cloud's guests show when a run against it failed.

For every nova server of the cloud: its status and fault, the tail of its
serial console (nova-compute's console.log), and from inside the guest, over
SSH with the management key Trove injects (``trove-mgmt``), its uptime and
load, memory, the database container and the guest agent's journal. Then
the lines of Trove's service logs that say something went wrong. Each part
is best effort: what can not be read says why, and the rest goes on.
"""

import dataclasses
import pathlib
import re
import shlex
import subprocess
from collections.abc import Iterable
from collections.abc import Sequence
from typing import Any

from trovestack.cloud import bootstrap
from trovestack.cloud import controlplane
from trovestack.cloud import rabbitmq
from trovestack.cloud.compute import cloud as compute_cloud
from trovestack.common import connection
from trovestack.common import netns
from trovestack.trove import compute_trove
from trovestack.trove import trove_config
from trovestack.trove.trove_config import AGENT_UNIT

# One SSH session runs them all; a section per command.
GUEST_COMMANDS = (
    ('uptime', 'uptime'),
    ('memory', 'free -m'),
    ('busiest processes', 'top -b -n 1 -o %CPU | sed -n "7,14p"'),
    ('containers', "sudo docker ps -a --format '{{.Names}} {{.Status}}'"),
    ('database container log',
     'sudo docker logs --tail 10 database 2>&1'),
    # The agent echoes every SQL statement, and sudo logs each command;
    # its own lines carry their time, the request context is left out.
    ('guest agent journal',
     f'sudo journalctl -u {AGENT_UNIT} -n 600 --no-pager -o cat '
     '| grep -v -e sqlalchemy.engine -e pam_unix -e " COMMAND=" '
     '| sed -E "s/ \\[(None )?req-[^]]*\\]//" | tail -n 30'),
    ('kernel trouble',
     'sudo dmesg | grep -i -e "out of memory" -e oom-kill '
     '-e "blocked for more than" -e "soft lockup" -e " error" '
     '| tail -n 10'),
)
GUEST_QUEUE = 'guestagent.'
SSH_TIMEOUT = 90
CONSOLE_LINES = 15
LOG_LINES = 15
LINE_WIDTH = 240
# An oslo.log line at ERROR or CRITICAL (date time pid LEVEL name ...).
TROUBLE = re.compile(r'^\S+ \S+ \d+ (ERROR|CRITICAL) ')
# An error line of an OVS/OVN daemon (|EMER| or |ERR|) or of the others.
DAEMON_ERROR = re.compile(r'\|(EMER|ERR)\||\b(ERROR|CRITICAL|FATAL)\b')


@dataclasses.dataclass(frozen=True)
class Where:
    """How to reach the guests of one compute cloud."""

    namespace: str
    key: pathlib.Path
    instances_dir: pathlib.Path
    logs: tuple = ()
    broker_dir: pathlib.Path | None = None

    @classmethod
    def of(cls, state_dir: pathlib.Path | str,
           layer: compute_cloud.ComputeLayer,
           logs: Iterable[pathlib.Path] = ()) -> 'Where':
        """The cloud in ``state_dir`` (its compute ``layer``); ``logs`` are
        the Trove service logs to search (default: the cloud's own
        trove-api, taskmanager and conductor). [ComputeError] when it has
        no compute layer up."""
        namespace = compute_cloud.namespace_of(state_dir)
        layout = layer.layout
        if not logs:
            logs = tuple(layout.log_file(name)
                         for name in compute_trove.TROVE_SERVICES)
        return cls(namespace, compute_trove.key_file(layout),
                   layer.paths.instances_dir,
                   tuple(pathlib.Path(p) for p in logs),
                   layout.service_dir('rabbitmq'))


def cloud_report(state_dir: pathlib.Path | str,
                 logs: Iterable[pathlib.Path] = ()) -> str:
    """:func:`report` on the compute cloud in ``state_dir`` as its admin;
    a one-line reason instead when that cloud can not be asked."""
    try:
        local_cloud = controlplane.LocalCloud(state_dir)
        layer = compute_cloud.ComputeLayer(local_cloud.layout)
        where = Where.of(state_dir, layer, logs)
        conn = bootstrap.admin_connection(
            local_cloud.state)  # type: ignore[arg-type]  # None: caught
    except Exception as exc:  # noqa: BLE001 - evidence is best effort
        return f'no evidence from the cloud in {state_dir}: {exc}'
    return '\n'.join([processes_part(layer), report(conn, where)])


def processes_part(layer: compute_cloud.ComputeLayer) -> str:
    """The compute layer's processes that do not run, each with the last
    error its log shows, and those that crashed and were started again by
    their supervisor, with the crash count and last error its crash
    watcher kept (an ovs-vswitchd that died takes every guest's network
    with it, for as long as it is down)."""
    try:
        health = layer.status()
    except Exception as exc:  # noqa: BLE001 - evidence is best effort
        return f'-- compute cloud processes: {exc}'
    lines = []
    for entry in health:
        errors = _matching(layer.paths.log_dir / f'{entry.name}.log',
                           DAEMON_ERROR)
        if entry.condition != 'running':
            last = f'; last error: {_clip(errors[-1])}' if errors else ''
            lines.append(f'{entry.name}: {entry.condition}{last}')
            continue
        crashes = getattr(entry, 'crashes', 0)
        if crashes:
            lines.append(f'{entry.name}: running again after {crashes} '
                         f'crash(es), the last: '
                         f'{_clip(entry.last_error)}')
    if not lines:
        return '-- every process of the compute cloud runs, none crashed'
    return '\n'.join(['-- compute cloud processes that crashed or do not '
                      'run', *lines])


def _matching(log: pathlib.Path, pattern: re.Pattern[str]) -> list[str]:
    if not log.exists():
        return []
    return [line for line in log.read_text(errors='replace').splitlines()
            if pattern.search(line)]


def report(conn: connection.Connection, where: Where, *,
           guest_user: str = trove_config.GUEST_USER) -> str:
    """The evidence as text (see the module's docstring)."""
    parts = []
    try:
        servers = list(conn.compute.servers(all_projects=True))
    except Exception as exc:  # noqa: BLE001 - report, go on
        servers = []
        parts.append(f'nova servers: {exc}')
    if not servers and not parts:
        parts.append('no nova server in the cloud (deleted already?)')
    for server in servers:
        parts.extend(_server_parts(server, where, guest_user))
    if where.broker_dir is not None:
        parts.append(_queues_part(where.broker_dir))
    for log in where.logs:
        parts.append(_log_part(log))
    return '\n'.join(parts)


def _server_parts(server: Any, where: Where, guest_user: str) -> list[str]:
    fault = (getattr(server, 'fault', None) or {}).get('message')
    parts = [f'== server {server.name} ({server.id}) {server.status}'
             + (f', fault: {fault}' if fault else '')]
    console = where.instances_dir / server.id / 'console.log'
    if console.exists():
        lines = console.read_text(errors='replace').splitlines()
        parts.append(f'-- console ({console}, last {CONSOLE_LINES} lines)')
        parts.extend(_clip(line) for line in lines[-CONSOLE_LINES:])
    address = management_address(server)
    if address is None:
        parts.append(f'-- no address on {compute_trove.NETWORK}: no SSH')
    elif server.status == 'ACTIVE':
        parts.append(guest_shell(where, address, guest_user))
    return parts


def management_address(server: Any) -> str | None:
    """The server's address on Trove's management network, or None."""
    for entry in (server.addresses or {}).get(compute_trove.NETWORK, []):
        if entry.get('addr'):
            return entry['addr']
    return None


def _script() -> str:
    lines = []
    for title, command in GUEST_COMMANDS:
        lines.append(f'echo {shlex.quote("-- " + title)}')
        lines.append(f'{command} 2>&1')
    return '\n'.join(lines)


def ssh_argv(where: Where, address: str, guest_user: str, command: str,
             options: Sequence[str] = ()) -> list[str]:
    """The command line that runs ``command`` (one shell command string)
    on the guest at ``address`` as ``guest_user``, over SSH from the
    cloud's namespace with its management key; ``options``: more ``-o``
    settings (``('ControlPath=...',)``)."""
    extra = [arg for option in options for arg in ('-o', option)]
    return netns.inside(where.namespace, [
        'ssh', '-i', str(where.key), '-o', 'BatchMode=yes', '-o',
        'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null',
        '-o', 'LogLevel=ERROR', '-o', 'ConnectTimeout=20', *extra,
        f'{guest_user}@{address}', command])


def guest_shell(where: Where, address: str, guest_user: str) -> str:
    """GUEST_COMMANDS' output from the guest at ``address`` (over SSH from
    the cloud's namespace), or why it could not be read."""
    if not where.key.exists():
        return f'-- guest {address}: no key {where.key}, no SSH'
    argv = ssh_argv(where, address, guest_user, _script())
    try:
        result = subprocess.run(argv, capture_output=True, text=True,
                                timeout=SSH_TIMEOUT, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return f'-- guest {address}: SSH gave no answer in {SSH_TIMEOUT} s'
    except OSError as exc:
        return f'-- guest {address}: {exc}'
    if result.returncode == 255:
        return (f'-- guest {address}: SSH failed: '
                + ' '.join(result.stderr.split())[:LINE_WIDTH])
    lines = [f'-- guest {address} (over SSH)']
    lines.extend(_clip(line) for line in result.stdout.splitlines())
    return '\n'.join(lines)


def _queues_part(broker_dir: pathlib.Path) -> str:
    """The guest agents' RPC queues, and any other queue with calls
    waiting."""
    try:
        queues = rabbitmq.list_queues(broker_dir)
    except rabbitmq.BrokerError as exc:
        return f'-- RabbitMQ: {exc}'
    shown = [f'{name}: {messages} waiting, {consumers} consumer(s)'
             + _reading(name, messages, consumers)
             for name, messages, consumers in sorted(queues)
             if messages or (name.startswith(GUEST_QUEUE)
                             and '_fanout_' not in name)]
    head = "-- RabbitMQ queues (guest agents' and any with messages waiting)"
    return '\n'.join([head, *(shown or ['none'])])


def _reading(name: str, messages: int, consumers: int) -> str:
    """What a guest agent's queue says about its agent."""
    if not name.startswith(GUEST_QUEUE):
        return ''
    if not consumers:
        return ': no guest agent connected'
    if messages:
        return ': the agent is connected but does not take its calls'
    return ''


def _log_part(log: pathlib.Path) -> str:
    if not log.exists():
        return f'-- {log}: missing'
    found = _matching(log, TROUBLE)
    if not found:
        return f'-- {log}: no error'
    head = f'-- {log} (last {min(len(found), LOG_LINES)} of {len(found)} ' \
           'error lines)'
    return '\n'.join([head, *(_clip(line) for line in found[-LOG_LINES:])])


def _clip(line: str) -> str:
    return line if len(line) <= LINE_WIDTH else line[:LINE_WIDTH] + '...'
