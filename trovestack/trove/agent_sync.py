"""A Trove tree's guest agent, synced into a running instance.

``trovestack instance sync-agent NAME`` is the short loop of a guest agent
change on the compute cloud: no image build, no new instance.  In order:

1. check: the tree's ``trove`` package compiles
   (:func:`trove_source.check_compiles`); a tree that does not is a named
   failure before anything reaches the guest;
2. locate: the instance's nova server, its address on Trove's management
   network, and on the guest (over SSH from the cloud's namespace, with the
   management key Trove injects, as the image's login user with sudo) the
   agent's unit, its virtualenv's Python and the ``trove`` package it
   imports;
3. copy: the tree's ``trove`` package (not its tests, no ``__pycache__``),
   with byte code compiled here when the guest's Python reads the same byte
   code (else compiled there), as one tar stream into a staging directory
   beside the installed package, which is then swapped with it in one
   ``renameat2(RENAME_EXCHANGE)``: the agent imports the old package or the
   new one, never a half-copied one; the old one stays as
   ``.trove.previous`` (rollback: ``restore``);
4. restart: the old agent killed (SIGKILL: its graceful stop cost ~8 s
   under TCG), then ``systemctl restart`` of the agent's unit;
5. answer: Trove's ``database list`` on the instance (API -> RabbitMQ ->
   the agent's RPC server -> the database), retried until it answers; the
   unit is watched meanwhile, and an agent that exits or does not answer in
   time is a named failure with its journal tail and its log's tail;
6. heartbeat (optional): the agent's first heartbeat after the restart, as
   trove-conductor records it (``service_statuses.updated_at`` in Trove's
   database; the API does not show it).

Why ``database list`` is the answer: it is the path a user and tempest take,
and only an agent that consumes its queue and reaches its database answers
it; a call that arrives before the new agent is up waits in the agent's
queue and is taken by it (Trove's API waits agent_call_low_timeout; the
client here waits longer, so one call at a time is outstanding and a
starting agent does not find a pile of them).  The heartbeat comes
report_interval (30 s) after the agent's RPC server starts, so it measures
the agent's start-up plus that fixed delay.

Every command of a sync goes through one SSH connection (ControlMaster);
the first sync enables lingering for the login user, whose systemd manager
otherwise starts anew (10-20 s under TCG) for each sync's first session.
"""

import dataclasses
import datetime
import io
import os
import pathlib
import py_compile
import re
import shlex
import sqlite3
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any
from typing import NoReturn

from trovestack.cloud import bootstrap
from trovestack.cloud import controlplane
from trovestack.cloud import layout as layout_mod
from trovestack.cloud import trove_source
from trovestack.cloud.compute import cloud as compute_cloud
from trovestack.common import connection
from trovestack.common import ini
from trovestack.common import waiting
from trovestack.common.errors import UserError
from trovestack.trove import compute_trove
from trovestack.trove import guests
from trovestack.trove import instances
from trovestack.trove import trove_config
from trovestack.trove.trove_config import AGENT_UNIT

# The time (UTC) of an instance's (id) last heartbeat, or None.
Heartbeats = Callable[[str], datetime.datetime | None]

PACKAGE = trove_source.DIST
PREVIOUS = '.trove.previous'
STAGING = '.trove.sync-'
DEFAULT_VENV = '/opt/guest-agent-venv'
AGENT_LOG = '/var/log/trove/trove-guestagent.log'
SKIPPED_DIRS = frozenset({'__pycache__', 'tests'})
SKIPPED_SUFFIXES = ('.pyc', '.pyo')
DEFAULT_TIMEOUT = 180   # seconds for the agent to answer after its restart
SSH_TIMEOUT = 120       # any one SSH command (the copy included)
POLL = 10               # seconds between looks at the agent's unit
HEARTBEAT_POLL = 1
# Longer than Trove's agent_call_low_timeout (60 s on the compute cloud).
ANSWER_HTTP_TIMEOUT = 150
TAIL_LINES = 40

_now = time.monotonic


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)


class SyncError(UserError):
    """A sync that did not happen or whose agent did not come back: one
    line; ``details`` holds the guest's evidence when there is some."""

    def __init__(self, message: str, details: str = '') -> None:
        super().__init__(message)
        self.details = details


class GuestError(SyncError):
    """An SSH command on the guest failed."""


@dataclasses.dataclass(frozen=True)
class Target:
    """The instance to sync: Trove's id, nova's server, its address on the
    management network."""

    name: str
    instance_id: str
    server_id: str
    address: str


@dataclasses.dataclass(frozen=True)
class AgentInstall:
    """Where the agent lives on the guest."""

    unit: str
    python: str
    package_dir: str      # .../site-packages/trove
    cache_tag: str        # cpython-311: the byte code its Python reads
    main_pid: int         # the agent's pid before the sync (0: not running)

    @property
    def site_dir(self) -> str:
        return str(pathlib.PurePosixPath(self.package_dir).parent)

    @property
    def previous_dir(self) -> str:
        return str(pathlib.PurePosixPath(self.site_dir) / PREVIOUS)


@dataclasses.dataclass
class SyncResult:
    """A sync whose agent answered, with the time each step took."""

    name: str
    id: str
    address: str
    source: str          # the tree, as trove_source describes it
    package_dir: str     # the agent's trove package on the guest
    previous: str        # the package it replaced, kept for a rollback
    files: int
    bytes: int           # the tar stream sent
    compiled_here: bool  # byte code compiled on this host (else on guest)
    answered_by: str
    seconds: dict        # step -> seconds it took
    timeline: dict       # event -> seconds since the command started

    @property
    def total(self) -> float:
        return self.timeline.get('heartbeat') or self.timeline['answered']


def _quiet(message: str) -> None:
    pass


# -- the package, packed ---------------------------------------------------

def package_files(tree: pathlib.Path) -> list[tuple[pathlib.Path, str]]:
    """(path, name in the archive) of every file of the tree's package that
    goes to the guest: not its tests, no byte code."""
    root = pathlib.Path(tree) / PACKAGE
    found = []
    for directory, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED_DIRS)
        for name in sorted(files):
            if name.endswith(SKIPPED_SUFFIXES):
                continue
            path = pathlib.Path(directory, name)
            found.append((path, path.relative_to(tree).as_posix()))
    return found


def _normalised(info: tarfile.TarInfo) -> tarfile.TarInfo:
    """Owned by root, readable by all (the agent runs as its own user)."""
    info.uid = info.gid = 0
    info.uname = info.gname = 'root'
    if info.isdir() or info.mode & 0o100:
        info.mode = 0o755
    else:
        info.mode = 0o644
    return info


def pack(tree: pathlib.Path, *, cache_tag: str | None = None,
         package_dir: str | None = None) -> tuple[bytes, int]:
    """(tar.gz bytes, number of files) of the tree's package; with
    ``cache_tag`` (the guest Python's, which reads this Python's byte
    code) each module's byte code compiled here goes along, as
    ``__pycache__/<module>.<cache_tag>.pyc`` checked against its source's
    hash; ``package_dir`` is the name tracebacks show for the files."""
    buffer = io.BytesIO()
    files = 0
    with tempfile.TemporaryDirectory(prefix='trovestack-sync-') as tmp, \
            tarfile.open(fileobj=buffer, mode='w:gz',
                         compresslevel=6) as tar:
        for path, name in package_files(tree):
            tar.add(path, arcname=name, recursive=False, filter=_normalised)
            files += 1
            if cache_tag and name.endswith('.py'):
                pyc = pathlib.Path(tmp, 'code.pyc')
                shown = name if package_dir is None else str(
                    pathlib.PurePosixPath(package_dir).parent / name)
                py_compile.compile(
                    str(path), cfile=str(pyc), dfile=shown, doraise=True,
                    invalidation_mode=(
                        py_compile.PycInvalidationMode.CHECKED_HASH))
                module = pathlib.PurePosixPath(name)
                tar.add(pyc, arcname=str(
                    module.parent / '__pycache__'
                    / f'{module.stem}.{cache_tag}.pyc'),
                    filter=_normalised)
    return buffer.getvalue(), files


# -- the guest --------------------------------------------------------------

class Guest:
    """Shell commands on one guest over SSH from the cloud's namespace,
    through one multiplexed connection while it is open (the agent's
    start-up is not slowed by a key exchange per look)."""

    def __init__(self, where: guests.Where, address: str,
                 user: str = trove_config.GUEST_USER) -> None:
        self.where = where
        self.address = address
        self.user = user
        self._control: str | None = None
        self._master = False

    def __enter__(self) -> 'Guest':
        self._control = tempfile.mkdtemp(prefix='trovestack-ssh-')
        argv = self._argv('true', master=True)
        with open(os.path.join(self._control, 'master.log'), 'w') as log:
            try:
                result = subprocess.run(
                    argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                    stderr=log, timeout=SSH_TIMEOUT)
                self._master = result.returncode == 0
            except (OSError, subprocess.TimeoutExpired):
                self._master = False
        return self

    def __exit__(self, *exc: object) -> None:
        if self._master:
            subprocess.run(self._argv('', stop=True), capture_output=True,
                           stdin=subprocess.DEVNULL, timeout=30, check=False)
        if self._control:
            for name in os.listdir(self._control):
                try:
                    os.unlink(os.path.join(self._control, name))
                except OSError:
                    pass
            try:
                os.rmdir(self._control)
            except OSError:
                pass
        self._control = None
        self._master = False

    def _argv(self, script: str, *, master: bool = False,
              stop: bool = False) -> list[str]:
        options: tuple[str, ...] = ()
        if self._control:
            path = os.path.join(self._control, 'control')
            if master:
                options = ('ControlMaster=yes', f'ControlPath={path}',
                           'ControlPersist=300')
            elif self._master:
                options = ('ControlMaster=no', f'ControlPath={path}')
        if master or stop:
            argv = guests.ssh_argv(self.where, self.address, self.user, '',
                                   options)[:-1]
            at = argv.index('ssh') + 1
            # -f: to the background once authenticated, -N: no command;
            # -O exit: the master ends.
            argv[at:at] = ['-f', '-N'] if master else ['-O', 'exit']
            return argv
        return guests.ssh_argv(self.where, self.address, self.user,
                               'bash -c ' + shlex.quote(script), options)

    def run(self, script: str, *, data: bytes | None = None,
            timeout: float = SSH_TIMEOUT, what: str | None = None) -> str:
        """``script``'s stdout (bash on the guest, as the login user);
        :class:`GuestError` naming ``what`` when it fails."""
        what = what or script.split('\n', 1)[0]
        try:
            result = subprocess.run(
                self._argv(script), input=data, capture_output=True,
                timeout=timeout,
                stdin=None if data is not None else subprocess.DEVNULL)
        except subprocess.TimeoutExpired as exc:
            raise GuestError(f'guest {self.address}: {what}: no answer '
                             f'in {timeout} s') from exc
        except OSError as exc:
            raise GuestError(f'guest {self.address}: {what}: {exc}') from exc
        if result.returncode != 0:
            err = result.stderr.decode(errors='replace').strip()
            raise GuestError(
                f'guest {self.address}: {what} failed (exit '
                f'{result.returncode}): '
                + (' '.join(err.splitlines()[-3:])[:400] or 'no message'))
        return result.stdout.decode(errors='replace')


# No Python here: its start costs seconds under TCG.  The package the
# agent imports is its virtualenv's (the unit's ExecStart names it).
_LOCATE = r'''
set -eu
exe=$(systemctl show -p ExecStart --value {unit} \
      | sed -n 's/.*path=\([^ ;]*\).*/\1/p' | head -n 1)
venv=$(dirname "$(dirname "${{exe:-{venv}/bin/x}}")")
test -x "$venv/bin/python" || venv={venv}
echo "python=$venv/bin/python"
for dir in "$venv"/lib/python3*/site-packages/trove; do
    if [ -f "$dir/__init__.py" ]; then echo "package_dir=$dir"; fi
done
echo "main_pid=$(systemctl show -p MainPID --value {unit})"
'''
# The Python of a site-packages directory: its byte code's cache tag.
_PYTHON_DIR = re.compile(r'/lib/python(\d+)\.(\d+)/site-packages/')

# The swap: RENAME_EXCHANGE makes the new package the imported one in one
# step (a kernel or file system without it: two renames), then the old one
# becomes the previous one; new == previous (a restore): the two swap.
_EXCHANGE = r'''
import ctypes, os, shutil, sys
new, current, previous = sys.argv[1:]
try:
    libc = ctypes.CDLL(None, use_errno=True)
    done = libc.renameat2(-100, new.encode(), -100, current.encode(), 2) == 0
except AttributeError:
    done = False
if not done:
    os.rename(current, new + '.old')
    os.rename(new, current)
    os.rename(new + '.old', new)
if new == previous:
    sys.exit(0)
if os.path.lexists(previous):
    shutil.rmtree(previous)
os.rename(new, previous)
'''

# The package's swap, as root (one sudo: each costs its PAM round under
# TCG); $1: the tar stream.
_COPY_AS_ROOT = r'''
set -eu
site={site}
stage=
trap '[ -z "$stage" ] || rm -rf "$stage"' EXIT
rm -rf "$site"/{staging}*
stage=$(mktemp -d "$site/{staging}XXXXXX")
tar -x -z -C "$stage" --no-same-owner -f "$1"
test -f "$stage/{package}/__init__.py"
{compile}
{python} -I -S -c {exchange} "$stage/{package}" "$site/{package}" \
    "$site/{previous}"
'''
# The stream goes to a file first: sudo may relay (and so take) its stdin
# even for a command that does not read it (sudoers' use_pty).
_COPY = r'''
set -eu
archive=$(mktemp)
trap 'rm -f "$archive"' EXIT
cat > "$archive"
sudo bash -c {as_root} copy "$archive" < /dev/null
'''

# Lingering keeps the login user's systemd manager between SSH sessions:
# without it every sync's first session waits for one to start (~10 s
# under TCG).
# The old agent is killed, not stopped: its graceful stop took ~8 s under
# TCG, and an instance being synced is a developer's (an operation the old
# agent was running is cut, as a crash would cut it).
_RESTART = '''
set -e
sudo sh -c 'systemctl kill --signal=SIGKILL {unit} 2>/dev/null || true
systemctl restart {unit}'
systemctl show -p MainPID --value {unit}
if command -v loginctl >/dev/null; then
    sudo loginctl enable-linger "$(id -un)" >/dev/null 2>&1 || true
fi
'''

_STATE = ('systemctl show -p MainPID -p ActiveState -p SubState '
          '-p ExecMainStatus {unit}')

# The journal without sudo's own lines (the agent runs many commands
# through sudo) and SQL echo.
_EVIDENCE = r'''
echo "-- {unit}: $(systemctl show -p ActiveState -p SubState -p NRestarts \
    -p ExecMainStatus {unit} | tr '\n' ' ')"
echo "-- journal of {unit} (last {lines} lines)"
sudo journalctl -u {unit} -n 400 --no-pager -o short-precise \
    | grep -v -e pam_unix -e " COMMAND=" -e sqlalchemy.engine \
    | tail -n {lines}
if sudo test -f {log}; then
    echo "-- {log} (last {lines} lines)"
    sudo tail -n {lines} {log} 2>&1
fi
true
'''


def _fields(text: str) -> dict[str, str]:
    found = {}
    for line in text.splitlines():
        key, sep, value = line.partition('=')
        if sep:
            found[key.strip()] = value.strip()
    return found


def locate(guest: Guest, unit: str = AGENT_UNIT) -> AgentInstall:
    """The agent's :class:`AgentInstall` on the guest."""
    out = guest.run(_LOCATE.format(unit=shlex.quote(unit),
                                   venv=DEFAULT_VENV),
                    what=f'finding the guest agent ({unit})')
    found = _fields(out)
    python_dir = _PYTHON_DIR.search(found.get('package_dir', '') + '/')
    if not python_dir:
        raise GuestError(f'guest {guest.address}: no guest agent\'s trove '
                         f'package found ({" ".join(out.split())!r})')
    try:
        pid = int(found.get('main_pid') or 0)
    except ValueError:
        pid = 0
    return AgentInstall(unit=unit, python=found['python'],
                        package_dir=found['package_dir'],
                        cache_tag='cpython-%s%s' % python_dir.groups(),
                        main_pid=pid)


def copy(guest: Guest, install: AgentInstall, data: bytes, *,
         compile_there: bool) -> None:
    """Send the packed package and swap it in (see the module's
    docstring)."""
    compile_step = (f'{shlex.quote(install.python)} -m compileall -q '
                    f'-j 0 "$stage/{PACKAGE}" >/dev/null'
                    if compile_there else ':')
    as_root = _COPY_AS_ROOT.format(
        site=shlex.quote(install.site_dir), staging=STAGING,
        package=PACKAGE, previous=PREVIOUS, compile=compile_step,
        python=shlex.quote(install.python), exchange=shlex.quote(_EXCHANGE))
    script = _COPY.format(as_root=shlex.quote(as_root))
    guest.run(script, data=data, what='copying the agent into '
              f'{install.package_dir}')


def restart(guest: Guest, install: AgentInstall) -> int:
    """Restart the agent's unit; the new agent's pid."""
    out = guest.run(_RESTART.format(unit=shlex.quote(install.unit)),
                    what=f'restarting {install.unit}')
    try:
        return int(out.split()[0])
    except (IndexError, ValueError):
        return 0


def unit_state(guest: Guest, install: AgentInstall) -> dict[str, str]:
    return _fields(guest.run(_STATE.format(unit=shlex.quote(install.unit)),
                             what=f'the state of {install.unit}',
                             timeout=60))


def evidence(guest: Guest, install: AgentInstall) -> str:
    """The unit's state, its journal's tail and the agent log's tail (or
    why they could not be read)."""
    try:
        return guest.run(_EVIDENCE.format(
            unit=shlex.quote(install.unit), lines=TAIL_LINES,
            log=shlex.quote(AGENT_LOG)), what='reading the agent journal',
            timeout=60).rstrip()
    except GuestError as exc:
        return f'-- no journal: {exc}'


def agent_logged(guest: Guest, text: str, unit: str = AGENT_UNIT) -> int:
    """How many lines of the agent's journal and log file hold ``text``
    (the agent logs to one or the other, as its configuration says)."""
    out = guest.run(
        f'{{ sudo journalctl -u {shlex.quote(unit)} --no-pager -o cat; '
        f'sudo cat {shlex.quote(AGENT_LOG)} 2>/dev/null; }} '
        f'| grep -cF -- {shlex.quote(text)} || true',
        what='reading the agent journal', timeout=60)
    try:
        return int(out.split()[-1])
    except (IndexError, ValueError):
        return 0


# -- the answer and the heartbeat ------------------------------------------

class _Answer(threading.Thread):
    """Trove's ``database list`` on the instance, asked again until it
    answers (each ask waits as long as Trove's API waits for the agent)."""

    def __init__(self, trove: Any, instance_id: str) -> None:
        super().__init__(daemon=True, name='sync-agent-answer')
        self.trove = trove
        self.instance_id = instance_id
        self.answered = threading.Event()
        self.stop = threading.Event()
        self.last_error: str | None = None
        self.at: float | None = None

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self.trove.databases.list(self.instance_id)
            except Exception as exc:  # noqa: BLE001 - asked again
                self.last_error = ' '.join(str(exc).split())[:300] or \
                    type(exc).__name__
                self.stop.wait(2)
                continue
            self.at = _now()
            self.answered.set()
            return


def sqlite_heartbeats(database: str) -> Heartbeats:
    """A reader of the time (UTC) of an instance's last heartbeat as
    trove-conductor recorded it in Trove's SQLite ``database``."""
    def last(instance_id: str) -> datetime.datetime | None:
        with sqlite3.connect(f'file:{database}?mode=ro', uri=True,
                             timeout=10) as db:
            row = db.execute(
                'SELECT max(updated_at) FROM service_statuses '
                'WHERE instance_id = ?', (instance_id,)).fetchone()
        if not row or not row[0]:
            return None
        return datetime.datetime.fromisoformat(str(row[0]))
    return last


def cloud_heartbeats(layout: layout_mod.Layout) -> Heartbeats | None:
    """:func:`sqlite_heartbeats` on the local cloud's Trove database, or
    None when its Trove keeps it elsewhere (MySQL: devstack's)."""
    path = compute_trove.config_files(layout)[trove_config.TROVE_CONF]
    try:
        url = ini.IniFile.load(path).get('database', 'connection') or ''
    except Exception:  # noqa: BLE001 - no heartbeat then, said so
        return None
    prefix = 'sqlite:///'
    if not url.startswith(prefix):
        return None
    return sqlite_heartbeats('/' + url[len(prefix):].lstrip('/'))


# -- the whole sync ---------------------------------------------------------

class _Clock:
    def __init__(self, progress: Callable[[str], None], label: str) -> None:
        self.started = _now()
        self.progress = progress
        self.label = label
        self.timeline: dict[str, float] = {}
        self.seconds: dict[str, float] = {}
        self._last = self.started

    def step(self, name: str, event: str, detail: str = '') -> None:
        """``name`` took the time since the last step; ``event`` at now."""
        now = _now()
        self.seconds[name] = round(now - self._last, 1)
        self.timeline[event] = round(now - self.started, 1)
        self._last = now
        self.progress(f'{self.label}: {event} at {self.timeline[event]} s '
                      f'({name} {self.seconds[name]} s)'
                      + (f': {detail}' if detail else ''))


def check(tree: pathlib.Path, label: str) -> None:
    """The tree's package compiles, or a named failure (nothing copied)."""
    try:
        trove_source.check_compiles(tree)
    except UserError as exc:
        raise SyncError(f'{label}: nothing copied: {exc}') from None


def sync(tree: pathlib.Path, target: Target, guest: Guest, trove: Any, *,
         source: str = '', timeout: float = DEFAULT_TIMEOUT,
         heartbeats: Heartbeats | None = None,
         progress: Callable[[str], None] | None = None,
         clock: '_Clock | None' = None) -> SyncResult:
    """Sync the agent of ``tree`` into ``target`` through ``guest`` (a
    :class:`Guest`), wait for it to answer Trove's ``database list``
    through ``trove`` (python-troveclient) and, given ``heartbeats`` (see
    :func:`sqlite_heartbeats`), for its first heartbeat; a
    :class:`SyncResult`.  The tree is checked first, unless ``clock`` (of
    a caller that checked it) is given."""
    if clock is None:
        clock = _Clock(progress or _quiet, f'instance {target.name}')
        check(tree, clock.label)
        clock.step('check', 'checked', f'{tree} compiles')
    install = locate(guest)
    here = install.cache_tag == sys.implementation.cache_tag
    clock.step('locate', 'located',
               f'{install.unit}, {install.package_dir} on {target.address}')
    data, files = pack(tree, cache_tag=install.cache_tag if here else None,
                       package_dir=install.package_dir)
    clock.step('pack', 'packed', f'{files} files, {len(data)} bytes'
               + ('' if here else ', byte code compiled on the guest'))
    copy(guest, install, data, compile_there=not here)
    clock.step('copy', 'copied', f'previous agent kept in '
               f'{install.previous_dir}')
    pid = restart(guest, install)
    # The old agent is gone: a heartbeat recorded from now on is the new
    # one's.
    restarted_utc = _utcnow()
    clock.step('restart', 'restarted', f'{install.unit} pid {pid}')
    _wait_answer(guest, install, trove, target, pid, timeout)
    clock.step('start-up', 'answered', 'Trove\'s database list')
    if heartbeats:
        _wait_heartbeat(guest, install, heartbeats, target, restarted_utc,
                        timeout)
        clock.step('heartbeat', 'heartbeat', 'trove-conductor recorded it')
    return SyncResult(
        name=target.name, id=target.instance_id, address=target.address,
        source=source or str(tree), package_dir=install.package_dir,
        previous=install.previous_dir, files=files, bytes=len(data),
        compiled_here=here, answered_by='database list',
        seconds=dict(clock.seconds), timeline=dict(clock.timeline))


def _fail(guest: Guest, install: AgentInstall, target: Target,
          message: str) -> NoReturn:
    raise SyncError(
        f'instance {target.name}: {message}; the agent synced is in '
        f'{install.package_dir}, the previous one in '
        f'{install.previous_dir} ("trovestack instance sync-agent '
        f'{target.name} --restore" puts it back)',
        evidence(guest, install))


def _wait_answer(guest: Guest, install: AgentInstall, trove: Any,
                 target: Target, pid: int, timeout: float) -> None:
    deadline = _now() + timeout
    answer = _Answer(trove, target.instance_id)
    answer.start()
    try:
        while not answer.answered.wait(POLL):
            if _now() > deadline:
                _fail(guest, install, target,
                      f'the agent did not answer within {timeout} s '
                      f'(last: {answer.last_error or "no answer yet"})')
            try:
                state = unit_state(guest, install)
            except GuestError:
                continue   # the guest is busy: the deadline decides
            if answer.answered.is_set():
                break
            now_pid = state.get('MainPID', '0')
            if state.get('ActiveState') != 'active' or \
                    (pid and now_pid != str(pid)):
                _fail(guest, install, target,
                      f'the agent exited after its restart ('
                      f'{state.get("ActiveState")}/{state.get("SubState")}'
                      f', exit status {state.get("ExecMainStatus")})')
    finally:
        answer.stop.set()


def _wait_heartbeat(guest: Guest, install: AgentInstall,
                    heartbeats: Heartbeats, target: Target,
                    after: datetime.datetime,
                    timeout: float) -> datetime.datetime | None:
    def recorded() -> datetime.datetime | None:
        try:
            last = heartbeats(target.instance_id)
        except sqlite3.Error:
            return None
        return last if last is not None and last > after else None

    try:
        return waiting.wait_for('a heartbeat', recorded, timeout,
                                interval=HEARTBEAT_POLL)
    except waiting.WaitTimeout:
        _fail(guest, install, target,
              'the agent answered but trove-conductor recorded no '
              'heartbeat from it')


def restore(guest: Guest, target: Target, *, timeout: float = DEFAULT_TIMEOUT,
            trove: Any = None,
            progress: Callable[[str], None] | None = None) -> dict[str, float]:
    """Swap the previous agent (``.trove.previous``) back in and restart
    it; waits for it to answer when ``trove`` is given.  [seconds]"""
    progress = progress or _quiet
    label = f'instance {target.name}'
    clock = _Clock(progress, label)
    install = locate(guest)
    script = (f'set -eu\ntest -d {shlex.quote(install.previous_dir)}\n'
              f'sudo {shlex.quote(install.python)} -I -S -c '
              f'{shlex.quote(_EXCHANGE)} '
              f'{shlex.quote(install.previous_dir)} '
              f'{shlex.quote(install.package_dir)} '
              f'{shlex.quote(install.previous_dir)}')
    guest.run(script, what=f'putting {install.previous_dir} back')
    clock.step('copy', 'restored', f'{install.previous_dir} -> '
               f'{install.package_dir}')
    pid = restart(guest, install)
    clock.step('restart', 'restarted', f'{install.unit} pid {pid}')
    if trove is not None:
        _wait_answer(guest, install, trove, target, pid, timeout)
        clock.step('start-up', 'answered', 'Trove\'s database list')
    return clock.seconds


# -- on the local compute cloud -------------------------------------------

def tree_of(
        source: pathlib.Path | str | None,
        state_dir: pathlib.Path | str | None = None,
) -> tuple[pathlib.Path, str]:
    """(tree path, description) of ``source`` (a Trove source tree), or of
    the tree the cloud of ``state_dir`` runs; a one-line error when the
    cloud runs the release and no tree is given."""
    if source:
        found = trove_source.of_tree(source)
    else:
        found = trove_source.of_cloud(state_dir)
        if not found.is_tree:
            raise SyncError(
                f'the cloud runs {found.describe()}, not a source tree: '
                'give the tree to sync with --source DIR (or start the '
                'cloud with "trovestack cloud up --trove-source DIR")')
    # a tree has its path
    return (pathlib.Path(found.path),  # type: ignore[arg-type]
            found.describe())


def find_target(conn: connection.Connection, admin: connection.Connection,
                name: str) -> tuple[Target, Any]:
    """The :class:`Target` of the instance ``name`` (Trove through
    ``conn``; nova, which only an admin asks for any server, through
    ``admin``)."""
    found = instances.find_instance(connection.trove_client(conn), name)
    if found is None:
        raise SyncError(f'instance {name}: there is no Trove instance of '
                        'that name')
    if found.status != instances.ACTIVE:
        raise SyncError(f'instance {name}: it is {found.status}, not '
                        f'{instances.ACTIVE}: its agent can not be synced')
    server_id = vars(found).get('server_id')
    if server_id:
        server = admin.compute.get_server(server_id)
    else:
        servers = list(admin.compute.servers(all_projects=True,
                                             name=f'^{name}$'))
        if len(servers) != 1:
            raise SyncError(f'instance {name}: {len(servers)} nova servers '
                            'of that name; can not tell which is its own')
        server = servers[0]
    address = guests.management_address(server)
    if address is None:
        raise SyncError(f'instance {name}: its server {server.id} has no '
                        'address on the management network')
    return Target(name=name, instance_id=found.id, server_id=server.id,
                  address=address), _patient_client(conn)


def _patient_client(conn: connection.Connection) -> Any:
    """python-troveclient whose requests wait longer than Trove's API waits
    for an agent (agent_call_low_timeout), so that one call at a time is
    outstanding: calls given up by the client while Trove still waits pile
    up in the agent's queue, and a starting agent takes them all."""
    from keystoneauth1 import session as ks_session
    from troveclient.v1 import client

    session = ks_session.Session(auth=conn.session.auth,
                                 verify=conn.session.verify,
                                 timeout=ANSWER_HTTP_TIMEOUT)
    return client.Client(
        session=session,
        region_name=conn.config.get_region_name('database'),
        endpoint_type=conn.config.get_interface('database'),
        service_type='database')


class _Cloud:
    """The local compute cloud of a state directory: admin connection,
    where its guests are, its Trove database's heartbeats."""

    def __init__(self, state_dir: pathlib.Path | str | None) -> None:
        local = controlplane.LocalCloud(state_dir)
        if local.state is None:
            raise SyncError(f'no local cloud in {local.layout.root} '
                            '(trovestack cloud up --compute)')
        layer = compute_cloud.ComputeLayer(local.layout)
        self.where = guests.Where.of(str(local.layout.root), layer)
        self.layout = local.layout
        self.admin = bootstrap.admin_connection(local.state)


def open_guest(
        name: str, *, state_dir: pathlib.Path | str | None = None,
        conn: connection.Connection | None = None,
) -> 'tuple[Target, Any, Guest, _Cloud]':
    """(:class:`Target`, python-troveclient, a :class:`Guest` not yet
    entered, the cloud) for the instance ``name`` of the local compute
    cloud in ``state_dir`` (Trove asked through ``conn``, default the
    cloud's admin)."""
    cloud = _Cloud(state_dir)
    target, trove = find_target(conn or cloud.admin, cloud.admin, name)
    return target, trove, Guest(cloud.where, target.address), cloud


def sync_agent(name: str, *, state_dir: pathlib.Path | str | None = None,
               source: pathlib.Path | str | None = None,
               conn: connection.Connection | None = None,
               timeout: float = DEFAULT_TIMEOUT, heartbeat: bool = False,
               progress: Callable[[str], None] | None = None) -> SyncResult:
    """Sync the agent of ``source`` (a Trove tree; default the one the
    cloud runs) into the instance ``name`` of the local compute cloud in
    ``state_dir`` and wait until it answers (and, with ``heartbeat``,
    until its first heartbeat); a :class:`SyncResult`, else
    :class:`SyncError` (a broken tree: before anything is copied)."""
    tree, described = tree_of(source, state_dir)
    clock = _Clock(progress or _quiet, f'instance {name}')
    check(tree, clock.label)   # before the cloud is asked anything
    clock.step('check', 'checked', f'{tree} compiles')
    target, trove, guest, cloud = open_guest(name, state_dir=state_dir,
                                             conn=conn)
    heartbeats = None
    if heartbeat:
        heartbeats = cloud_heartbeats(cloud.layout)
        if heartbeats is None:
            raise SyncError('the cloud\'s Trove keeps its database outside '
                            'SQLite: its heartbeats can not be read here')
    with guest:
        return sync(tree, target, guest, trove, source=described,
                    timeout=timeout, heartbeats=heartbeats, clock=clock)


def restore_agent(
        name: str, *, state_dir: pathlib.Path | str | None = None,
        conn: connection.Connection | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        progress: Callable[[str], None] | None = None) -> dict[str, float]:
    """Put the agent an earlier sync replaced back into the instance
    ``name`` and wait until it answers; {step: seconds}."""
    target, trove, guest, _ = open_guest(name, state_dir=state_dir,
                                         conn=conn)
    with guest:
        return restore(guest, target, timeout=timeout, trove=trove,
                       progress=progress)

