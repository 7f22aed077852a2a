"""Where an instance's time went, from Trove's create call to ACTIVE.

One timeline, in seconds since the create call, of what every side can
tell:

- **Trove**: the statuses the instance showed (the tracker's polls) and,
  on the local cloud, the taskmanager's log (networks made, nova asked to
  boot, the guest found ready);
- **nova**: the server's instance action events (scheduling, the build on
  the compute host), through the API of any cloud;
- **the serial console**, watched while the instance boots (the local
  compute cloud: nova-compute's ``console.log``): boot loader, kernel,
  first systemd line, login prompt;
- **the guest**, over SSH with the management key once it answers (the
  local compute cloud): its journal (kernel start, systemd's units,
  cloud-init's stages, the guest agent's unit and its log lines through
  ``prepare``, the number of ``sudo`` calls), and Docker's events for
  the database container (created, started, healthy).

The guest's clock is compared with the host's over the same SSH
connection and its times corrected by the difference; the console's
kernel and systemd times win over the journal's (under emulation the
guest's clock drifts in early boot).  A part that can
not be read leaves a note and the rest goes on: a slow instance always
gets the timeline there is.
"""

import dataclasses
import datetime
import pathlib
import re
import threading
import time
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Iterator
from typing import Any

from trovestack.cloud import controlplane
from trovestack.cloud.compute import cloud as compute_cloud
from trovestack.common import connection
from trovestack.common.errors import UserError
from trovestack.trove import agent_sync
from trovestack.trove import guests
from trovestack.trove import instances
from trovestack.trove.trove_config import AGENT_UNIT

# (stage, text) of the serial console, in the order a boot prints them.
CONSOLE_MARKS = (
    ('boot loader', 'Booting `'),
    ('kernel loading', 'Loading Linux'),
    ('initrd loading', 'Loading initial ramdisk'),
    ('kernel started', 'Linux version'),
    ('initramfs started', 'Run /init'),
    ('systemd started', 'systemd['),
    ('login prompt', ' login: '),
)
CONSOLE_POLL = 0.5
# (stage, pattern) of the taskmanager's log lines for one instance.
TASKMANAGER_MARKS = (
    ('trove: networks ready', 'Finished to prepare networks'),
    ('trove: nova asked to boot', 'Waiting for instance'),
    ('trove: guest ready', 'Created instance'),
)
# (stage, pattern) of the units systemd starts, from its journal lines.
UNIT_MARKS = (
    ('cloud-init local started', 'Starting cloud-init-local.service'),
    ('cloud-init local done', 'Finished cloud-init-local.service'),
    ('network up', 'Finished networking.service'),
    ('cloud-init network done', 'Finished cloud-init.service'),
    ('docker started', 'Started docker.service'),
    ('guest agent unit started', f'Started {AGENT_UNIT}'),
    ('cloud-init final done', 'Finished cloud-final.service'),
)
# (stage, pattern) of the guest agent's own lines (Trove 26).
AGENT_MARKS = (
    ('agent first output', ''),
    # An agent started early in the boot (trove-guest-agent element) says
    # when the boot released it; its imports were done by then.
    ('agent released', 'trove guest agent: imported in'),
    ('agent logging', ' INFO '),
    ('agent volume mounted', 'Preparing the storage'),
    ('agent RPC up', 'Initializing module driver manager'),
    ('prepare started', 'Starting datastore prepare'),
    ('database container created (agent)', 'Creating docker container'),
    ('prepare finished', 'Completed setup of'),
)
DOCKER_MARKS = (
    ('database container created', 'create'),
    ('database container started', 'start'),
    ('database healthy', 'health_status: healthy'),
)
# One SSH session prints every part, each after a line "== <part>".
GUEST_SCRIPT = f'''
echo "== kernel"; sudo journalctl -b -k -o short-unix --no-pager \
    | head -n 1
echo "== systemd"; sudo journalctl -b -o short-unix --no-pager -t systemd \
    | grep -F 'systemd[1]:' \
    | grep -e 'Starting ' -e 'Started ' -e 'Finished ' -e 'running in system'
echo "== agent"; sudo journalctl -b -o short-unix --no-pager \
    _SYSTEMD_UNIT={AGENT_UNIT} | grep -v -e sqlalchemy -e ' COMMAND='
echo "== sudo"; sudo journalctl -b -o short-unix --no-pager -t sudo \
    | grep -c ' COMMAND=' || true
echo "== ready"; sudo docker logs --timestamps database 2>&1 \
    | grep -m 1 -e 'ready for connections' -e 'ready to accept connections'
echo "== health"; sudo docker inspect --format \
    '{{{{range .State.Health.Log}}}}{{{{.Start.UnixNano}}}} {{{{.ExitCode}}}}
{{{{end}}}}' database 2>/dev/null || true
echo "== docker"; sudo docker events --since 0 --until "$(date +%s)" \
    --filter container=database \
    --format '{{{{.TimeNano}}}} {{{{.Action}}}}' 2>/dev/null || true
'''
SSH_TIMEOUT = 120
# Seconds between the console's and the guest journal's kernel start
# beyond which the guest's early clock is said to have lagged.
EARLY_CLOCK_SLACK = 5
DOCKER_HEALTH_LOG = 5   # health checks Docker keeps per container
_JOURNAL_LINE = re.compile(r'^(?P<epoch>\d+\.\d+) (?P<rest>.*)$')


@dataclasses.dataclass(frozen=True)
class Event:
    """One moment: ``at`` seconds since the create call."""

    at: float
    stage: str
    source: str
    detail: str = ''


@dataclasses.dataclass
class Breakdown:
    """An instance's timeline and what could not be read."""

    instance_id: str
    started: float                    # the create call, epoch seconds
    events: list = dataclasses.field(default_factory=list)
    notes: list = dataclasses.field(default_factory=list)

    def add(self, stage: str, source: str, epoch: float | None,
            detail: str = '') -> None:
        """Record ``stage`` at ``epoch`` (host clock) unless recorded."""
        if epoch is None or self.at(stage) is not None:
            return
        self.events.append(Event(round(epoch - self.started, 1), stage,
                                 source, detail))

    def at(self, stage: str) -> float | None:
        """Seconds since the create call at which ``stage`` was seen."""
        for event in self.events:
            if event.stage == stage:
                return event.at
        return None

    def rows(self) -> list[dict]:
        """The events in time order, each with the seconds since the one
        before it."""
        rows, previous = [], 0.0
        for event in sorted(self.events, key=lambda e: e.at):
            rows.append({'at': event.at,
                         'delta': round(event.at - previous, 1),
                         'stage': event.stage, 'source': event.source,
                         'detail': event.detail})
            previous = event.at
        return rows

    def as_dict(self) -> dict:
        return {'instance_id': self.instance_id,
                'started': self.started, 'events': self.rows(),
                'notes': list(self.notes)}

    def text(self) -> str:
        """The timeline as lines of text, the notes after it."""
        lines = [f'{row["at"]:8.1f} s {row["delta"]:+7.1f}  '
                 f'{row["source"]:<7} {row["stage"]}'
                 + (f' ({row["detail"]})' if row['detail'] else '')
                 for row in self.rows()]
        lines += [f'note: {note}' for note in self.notes]
        return '\n'.join(lines)


def _epoch(text: str | None) -> float | None:
    """Epoch seconds of an ISO time as OpenStack APIs give it (UTC when
    it names no zone), or None."""
    if not text:
        return None
    when = datetime.datetime.fromisoformat(str(text).replace('Z', '+00:00'))
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.timezone.utc)
    return when.timestamp()


# -- the console ------------------------------------------------------------

class ConsoleWatch(threading.Thread):
    """Watches a console log file as the guest boots: the host time at
    which each of CONSOLE_MARKS first appears.  ``locate`` returns the
    file's path once it is known (None before)."""

    def __init__(self, locate: Callable[[], pathlib.Path | None],
                 poll: float = CONSOLE_POLL) -> None:
        super().__init__(name='console-watch', daemon=True)
        self.locate = locate
        self.poll = poll
        self.seen: dict[str, float] = {}
        self.opened: float | None = None
        self._halt = threading.Event()

    def run(self) -> None:
        path = None
        while not self._halt.is_set() and len(self.seen) < len(
                CONSOLE_MARKS):
            try:
                path = path or self.locate()
                if path is not None and pathlib.Path(path).exists():
                    self.opened = self.opened or time.time()
                    self._look(pathlib.Path(path).read_bytes())
            except Exception:  # noqa: BLE001 - a watch never fails the run
                pass
            self._halt.wait(self.poll)

    def _look(self, data: bytes) -> None:
        text = data.decode(errors='replace')
        now = time.time()
        for stage, mark in CONSOLE_MARKS:
            if stage not in self.seen and mark in text:
                self.seen[stage] = now

    def stop(self) -> None:
        self._halt.set()

    def record(self, breakdown: Breakdown) -> None:
        if self.opened is None:
            breakdown.notes.append('console: no console log appeared')
            return
        breakdown.add('console log opened (qemu started)', 'console',
                      self.opened)
        for stage, _mark in CONSOLE_MARKS:
            breakdown.add(stage, 'console', self.seen.get(stage))


# -- Trove and nova ---------------------------------------------------------

def record_tracker(breakdown: Breakdown, tracker: instances.Tracker) -> None:
    """The statuses the tracker saw (its timeline is relative to its own
    start, the create call)."""
    for stage, seconds in tracker.timeline.items():
        breakdown.add(f'trove: {stage}', 'trove',
                      breakdown.started + seconds)


def record_taskmanager_log(breakdown: Breakdown,
                           log: pathlib.Path | str) -> None:
    """The taskmanager's lines about this instance (oslo.log's local time
    stamps, as the control plane writes them)."""
    path = pathlib.Path(log)
    if not path.exists():
        breakdown.notes.append(f'trove: no taskmanager log {path}')
        return
    for line in path.read_text(errors='replace').splitlines():
        if breakdown.instance_id not in line:
            continue
        for stage, mark in TASKMANAGER_MARKS:
            if mark in line:
                breakdown.add(stage, 'trove', _log_epoch(line))


def _log_epoch(line: str) -> float | None:
    try:
        when = datetime.datetime.strptime(line[:23], '%Y-%m-%d %H:%M:%S.%f')
    except ValueError:
        return None
    return when.timestamp()


def record_nova(breakdown: Breakdown, conn: connection.Connection,
                server_id: str) -> None:
    """The server's create action: each event's start and finish."""
    try:
        actions = [action for action in conn.compute.server_actions(
            server_id) if action.action == 'create']
        if not actions:
            breakdown.notes.append('nova: no create action recorded')
            return
        action = conn.compute.get_server_action(actions[0].request_id,
                                                server_id)
    except Exception as exc:  # noqa: BLE001 - the rest goes on
        breakdown.notes.append(f'nova: instance actions: {exc}')
        return
    for event in action.events or ():
        name = event.get('event', '?').replace('compute__', '')
        breakdown.add(f'nova: {name} started', 'nova',
                      _epoch(event.get('start_time')))
        breakdown.add(f'nova: {name} finished', 'nova',
                      _epoch(event.get('finish_time')))


# -- the guest --------------------------------------------------------------

def record_guest(breakdown: Breakdown, run: Callable[[str], str]) -> None:
    """The guest's own account.  ``run(script)`` runs a shell script on
    the guest and returns its output (over a connection that is open
    already: its clock is compared with the host's around one call)."""
    try:
        before = time.time()
        clock = run('date +%s.%N')
        after = time.time()
        output = run(GUEST_SCRIPT)
    except Exception as exc:  # noqa: BLE001 - the rest goes on
        breakdown.notes.append(f'guest: {exc}')
        return
    parts = _parts(output)
    skew = _skew(clock.splitlines(), before, after)
    if skew is None:
        breakdown.notes.append('guest: its clock could not be read')
        skew = 0.0
    elif abs(skew) >= 1:
        breakdown.notes.append(f'guest: its clock is {skew:+.1f} s off '
                               'the host\'s (times corrected)')

    def add(stage: str, epoch: float | None, detail: str = '') -> None:
        if epoch is not None:
            breakdown.add(stage, 'guest', epoch - skew, detail)

    for epoch, _rest in _journal(parts.get('kernel', [])):
        seen = breakdown.at('kernel started')
        off = (epoch - skew - breakdown.started) - seen if seen else 0
        if abs(off) >= EARLY_CLOCK_SLACK:
            breakdown.notes.append(
                f'guest: its journal puts the kernel start {abs(off):.0f} s '
                f'{"later" if off > 0 else "earlier"} than the console '
                'showed it (its clock drifts in early boot under '
                "emulation): the console's kernel and systemd times kept")
        add('kernel started', epoch)
    systemd = list(_journal(parts.get('systemd', [])))
    for epoch, rest in systemd:
        if 'running in system' in rest:
            add('systemd started', epoch)
            break
    _first_matches(systemd, UNIT_MARKS, add)
    agent = list(_journal(parts.get('agent', [])))
    _first_matches(agent, AGENT_MARKS, add)
    sudo = ''.join(parts.get('sudo', [])).strip()
    if sudo.isdigit():
        breakdown.notes.append(f'guest: {sudo} sudo calls since boot')
    for line in parts.get('ready', []):
        add('database ready (server log)', _docker_log_epoch(line))
    checks = [line.split() for line in parts.get('health', [])
              if line.strip()]
    for number, (nanos, code) in enumerate(checks, 1):
        result = 'passed' if code == '0' else f'failed, exit {code}'
        if nanos.isdigit():
            add(f'health check {number} ({result})', int(nanos) / 1e9)
    if len(checks) >= DOCKER_HEALTH_LOG:
        breakdown.notes.append(f'guest: Docker keeps the last '
                               f'{DOCKER_HEALTH_LOG} health checks only')
    for line in parts.get('docker', []):
        nanos, _, action = line.partition(' ')
        for stage, wanted in DOCKER_MARKS:
            if action.strip() == wanted and nanos.isdigit():
                add(stage, int(nanos) / 1e9)


def _docker_log_epoch(line: str) -> float | None:
    """Epoch seconds of a ``docker logs --timestamps`` line."""
    stamp = line.split(' ', 1)[0]
    whole, _, fraction = stamp.rstrip('Z').partition('.')
    try:
        return _epoch(f'{whole}.{(fraction + "000000")[:6]}+00:00')
    except ValueError:
        return None


def _parts(output: str) -> dict[str, list[str]]:
    parts: dict[str, list[str]]
    current: list[str] | None
    parts, current = {}, None
    for line in output.splitlines():
        if line.startswith('== '):
            current = parts.setdefault(line[3:].strip(), [])
        elif current is not None:
            current.append(line)
    return parts


def _skew(lines: Iterable[str], before: float, after: float) -> float | None:
    """The guest clock minus the host's: the guest read it between
    ``before`` and ``after`` (taken as halfway)."""
    for line in lines:
        try:
            guest = float(line.strip())
        except ValueError:
            continue
        return guest - (before + after) / 2
    return None


def _journal(lines: Iterable[str]) -> Iterator[tuple[float, str]]:
    for line in lines:
        match = _JOURNAL_LINE.match(line)
        if match:
            yield float(match['epoch']), match['rest']


def _first_matches(entries: Iterable[tuple[float, str]],
                   marks: Iterable[tuple[str, str]],
                   add: Callable[[str, float], None]) -> None:
    for stage, mark in marks:
        for epoch, rest in entries:
            if mark in rest:
                add(stage, epoch)
                break


# -- putting it together ----------------------------------------------------

@dataclasses.dataclass(frozen=True)
class ComputeAccess:
    """What the local compute cloud lets the timeline read besides the
    APIs: its console logs, its guests over SSH, Trove's logs."""

    where: guests.Where
    taskmanager_log: pathlib.Path

    @classmethod
    def of(cls, state_dir: pathlib.Path | str) -> 'ComputeAccess | None':
        """The compute cloud in ``state_dir``, or None when there is none
        (another cloud: the APIs only)."""
        try:
            local = controlplane.LocalCloud(state_dir)
            if local.state is None or not compute_cloud.is_enabled(local):
                return None
            layer = compute_cloud.ComputeLayer(local.layout)
            return cls(guests.Where.of(str(state_dir), layer),
                       local.layout.log_file('trove-taskmanager'))
        except Exception:  # noqa: BLE001 - no compute cloud there
            return None

    def console_path(self,
                     server_id: str | None) -> pathlib.Path | None:
        if not server_id:
            return None
        return self.where.instances_dir / server_id / 'console.log'



def collect(conn: connection.Connection, instance_id: str, *, started: float,
            server_id: str | None = None,
            tracker: instances.Tracker | None = None,
            console: ConsoleWatch | None = None,
            access: ComputeAccess | None = None) -> Breakdown:
    """The :class:`Breakdown` of one instance: ``started`` is the create
    call's epoch time; ``tracker`` (its statuses), ``console`` (a
    :class:`ConsoleWatch` that ran) and ``access`` (the local compute
    cloud's :class:`ComputeAccess`) add what they know."""
    breakdown = Breakdown(instance_id, started)
    breakdown.add('trove: create called', 'trove', started)
    if tracker is not None:
        record_tracker(breakdown, tracker)
        server_id = server_id or tracker.server_id
    if server_id:
        record_nova(breakdown, conn, server_id)
    else:
        breakdown.notes.append('nova: the instance has no server id')
    if console is not None:
        console.record(breakdown)
    if access is None:
        breakdown.notes.append('guest: not on the local compute cloud, '
                               'its own timeline is not read')
        return breakdown
    record_taskmanager_log(breakdown, access.taskmanager_log)
    address = None
    if server_id:
        try:
            address = guests.management_address(
                conn.compute.get_server(server_id))
        except Exception as exc:  # noqa: BLE001 - the rest goes on
            breakdown.notes.append(f'guest: server {server_id}: {exc}')
    if address is None:
        breakdown.notes.append('guest: no management address, no SSH')
        return breakdown
    with agent_sync.Guest(access.where, address) as guest:
        record_guest(breakdown, lambda script: guest.run(
            script, timeout=SSH_TIMEOUT, what='timeline from the guest'))
    return breakdown


def ensure_with_breakdown(
        conn: connection.Connection, name: str, *, tracker: instances.Tracker,
        access: ComputeAccess | None = None,
        **create: Any) -> tuple[instances.InstanceResult, Breakdown]:
    """:func:`instances.ensure_instance` (``create``: its options) followed
    by ``tracker``, with the serial console watched while it waits when
    ``access`` (the local compute cloud) is given; then the instance's
    :class:`Breakdown`.  Returns (the InstanceResult, the Breakdown)."""
    console = None
    if access is not None:
        console = ConsoleWatch(lambda: access.console_path(tracker.server_id))
        console.start()
    try:
        result = instances.ensure_instance(conn, name, tracker=tracker,
                                           **create)
    finally:
        if console is not None:
            console.stop()
    tracker.say('reading where the time went')
    return result, collect(conn, result.id, started=tracker.started_at,
                           tracker=tracker, console=console, access=access)


def breakdown_of(conn: connection.Connection, name: str, *,
                 access: ComputeAccess | None = None) -> Breakdown:
    """The :class:`Breakdown` of the instance ``name`` as it can be read
    after the fact: from Trove's created time (whole seconds), without the
    console or the statuses it showed.  [UserError] when there is none."""
    trove = connection.trove_client(conn)
    instance = instances.find_instance(trove, name)
    if instance is None:
        raise UserError(f'no instance {name}')
    started = _epoch(getattr(instance, 'created', None))
    if started is None:
        raise UserError(f'instance {name}: Trove gives no created time')
    breakdown = collect(conn, instance.id, started=started,
                        server_id=getattr(instance, 'server_id', None),
                        access=access)
    breakdown.notes.insert(0, 'trove: from its created time, to the second;'
                           ' statuses and console only with "instance up '
                           '--breakdown"')
    return breakdown
