"""Every long-running process of a local cloud, under one supervisord.

A :class:`Program` declares one process: its argv, the network namespace
it runs in, its environment, how to tell it is ready, which programs it
needs started first.  A :class:`Supervisor` owns one supervisord per state
directory (started on first use, found again by the next command through
its unix socket): supervisord is the parent of every program, so it knows
their pids for certain (a reused pid is never taken for ours), restarts a
program that dies, backs off while one keeps dying during start-up and
gives up on it after a few tries (FATAL).  The crash watcher
(:mod:`trovestack.cloud.crashwatch`, an event listener of the same
supervisord) counts crashes, keeps the last error, and stops a program
that keeps crashing after it ran, so that it is reported instead of being
restarted forever.  :func:`start_in_order` starts programs in dependency
order, in parallel where their needs allow, each awaited with its probe.

Why supervisord and not a runner of our own: it is the one supervisor both
on PyPI and in Debian, its process handling (process groups, SIGCHLD,
restart back-off, log files) is old and proven, and a persistent parent is
what supervision needs while our commands come and go (doc/architecture.md
has the measurements).
"""

import concurrent.futures
import dataclasses
import hashlib
import http.client
import json
import logging
import os
import pathlib
import shlex
import socket
import subprocess
import sys
import tempfile
import threading
import time
import xmlrpc.client
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any

import psutil

from trovestack.cloud import LocalCloudError
from trovestack.cloud import processes
from trovestack.common import files
from trovestack.common import netns as netns_mod
from trovestack.common import waiting

LOG = logging.getLogger(__name__)

# Every process a supervisor runs (and the supervisor itself) carries this
# variable, valued with the supervisor's state directory: processes left
# behind by a supervisor that was killed are found by it, and nothing else.
OWNER_VARIABLE = 'TROVESTACK_SUPERVISOR'
START_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0
# supervisord's own start-up back-off: a program that dies within
# STARTSECS of a start is tried again after 1, 2, 3... seconds, at most
# STARTRETRIES times, then left FATAL.
STARTSECS = 1
STARTRETRIES = 5
RECORD = 'crashes.json'
WATCHER = 'crashwatch'

RUNNING, STARTING, BACKOFF = 'RUNNING', 'STARTING', 'BACKOFF'
STOPPED, STOPPING, EXITED, FATAL = 'STOPPED', 'STOPPING', 'EXITED', 'FATAL'
FAILED_STATES = (BACKOFF, FATAL, EXITED)


class SupervisionError(LocalCloudError):
    """A program could not be started, awaited or stopped."""


@dataclasses.dataclass(frozen=True)
class Program:
    """One long-running process, declared.

    ``ready`` is its readiness probe (None: running is ready); ``needs``
    names the programs (or :class:`Step` s) that must be ready before it
    starts; ``log`` is its log file's name under the supervisor's log
    directory (default ``<name>.log``) or an absolute path; ``user`` runs
    it as another user.
    """

    name: str
    argv: Sequence[str | os.PathLike[str]]  # str() makes each an argument
    netns: str | None = None
    ready: Callable[[], bool] | None = None
    env: Mapping[str, str] = dataclasses.field(default_factory=dict)
    needs: tuple[str, ...] = ()
    log: str | None = None
    stop_timeout: float = STOP_TIMEOUT
    user: str | None = None   # run as this user (supervisord must be root)

    def full_argv(self) -> list[str]:
        return netns_mod.inside(self.netns, self.argv)


@dataclasses.dataclass(frozen=True)
class Step:
    """A set-up action in the start graph (a database made, a bridge
    added): runs once its needs are ready, and counts as ready when it
    returned."""

    name: str
    run: Callable[[], object]
    needs: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class Status:
    """How one program is doing, as supervisord and the crash watcher
    know it."""

    name: str
    state: str            # supervisord's state, or STOPPED if unknown
    pid: int | None
    crashes: int = 0
    last_error: str = ''
    given_up: bool = False

    @property
    def running(self) -> bool:
        return self.state in (RUNNING, STARTING) and bool(self.pid)


def condition(status: Status, answers: bool) -> str:
    """What ``cloud status`` says of a program: running, not answering
    (its probe fails), restarting (supervisord backs off), failed (given
    up on) or stopped."""
    if status.given_up or status.state == FATAL:
        return 'failed'
    if status.state == BACKOFF:
        return 'restarting'
    if not status.running:
        return 'stopped'
    return 'running' if answers else 'not answering'


def _quote(value: str | pathlib.Path) -> str:
    """A value for supervisord's configuration (it expands %(...)s)."""
    return str(value).replace('%', '%%')


def _environment(env: Mapping[str, str]) -> str:
    def one(value: str) -> str:
        escaped = str(value).replace('\\', '\\\\').replace('"', '\\"')
        return f'"{escaped}"'
    return ','.join(f'{key}={_quote(one(value))}'
                    for key, value in sorted(env.items()))


class Supervisor:
    """The supervisord of one state directory ``root``; programs log to
    ``log_dir``."""

    def __init__(self, root: pathlib.Path | str,
                 log_dir: pathlib.Path | str | None = None) -> None:
        self.root = pathlib.Path(root).absolute()
        self.dir = self.root / 'supervisor'
        self.log_dir = pathlib.Path(log_dir or self.root / 'logs')
        self.programs_dir = self.dir / 'programs'
        self.config = self.dir / 'supervisord.conf'
        self.record = self.dir / RECORD
        self.pid_file = self.dir / 'supervisord.pid'
        digest = hashlib.sha256(str(self.root).encode()).hexdigest()[:16]
        # Unix socket paths are limited to 107 bytes: a deep state
        # directory gets a short private directory for its socket.
        candidate = self.dir / 'supervisor.sock'
        if len(str(candidate)) < 100:
            self.socket = candidate
        else:
            self.socket = (pathlib.Path(tempfile.gettempdir())
                           / f'trovestack-{os.getuid()}-{digest}'
                           / 'supervisor.sock')
        self.identifier = f'trovestack-{digest}'
        self._lock = threading.Lock()

    # ------------------------------------------------------------ daemon
    def _lock_file(self) -> pathlib.Path:
        return files.key_lock_path('supervisor', str(self.root))

    def _proxy(self, timeout: float = 30.0) -> xmlrpc.client.ServerProxy:
        return xmlrpc.client.ServerProxy(
            'http://localhost', transport=_UnixTransport(self.socket, timeout),
            allow_none=True)

    def _call(self, method: str, *args: Any, timeout: float = 30.0) -> Any:
        proxy = self._proxy(timeout)
        target = proxy
        for part in method.split('.'):
            target = getattr(target, part)
        return target(*args)

    def answers(self) -> bool:
        """True when our supervisord answers on its socket."""
        if not self.socket.exists():
            return False
        try:
            return self._call('supervisor.getIdentification',
                              timeout=5.0) == self.identifier
        except (OSError, xmlrpc.client.Error, http.client.HTTPException):
            return False

    def ensure(self) -> None:
        """Start supervisord unless it answers (killing first what a
        supervisord that died left running)."""
        with self._lock, files.exclusive_lock(self._lock_file()):
            if self.answers():
                return
            self._kill_orphans()
            for directory in (self.dir, self.programs_dir, self.log_dir,
                              self.socket.parent):
                directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            self.socket.unlink(missing_ok=True)
            self.record.unlink(missing_ok=True)
            self._write_config()
            log = self.log_dir / 'supervisord.log'
            env = processes.service_env({OWNER_VARIABLE: str(self.root)})
            with open(log, 'ab') as out:
                result = subprocess.run(
                    [sys.executable, '-m', 'supervisor.supervisord', '-c',
                     str(self.config)],
                    stdout=out, stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL, cwd=self.log_dir,
                    env=env, check=False)
            if result.returncode != 0:
                raise SupervisionError(
                    f'supervisord did not start (exit {result.returncode});'
                    f' last lines of {log}:\n{processes.log_tail(log)}')
            try:
                waiting.wait_for('supervisord answering', self.answers,
                                 15.0, interval=0.05)
            except waiting.WaitTimeout as exc:
                raise SupervisionError(
                    f'{exc}; last lines of {log}:\n'
                    f'{processes.log_tail(log)}') from None

    def _write_config(self) -> None:
        lines = [
            '[unix_http_server]',
            f'file = {_quote(self.socket)}',
            'chmod = 0700',
            '',
            '[supervisord]',
            f'logfile = {_quote(self.log_dir / "supervisord.log")}',
            'logfile_maxbytes = 0',
            f'pidfile = {_quote(self.pid_file)}',
            f'identifier = {self.identifier}',
            f'directory = {_quote(self.log_dir)}',
            f'childlogdir = {_quote(self.log_dir)}',
            'umask = 022',
            'loglevel = info',
            '',
            '[rpcinterface:supervisor]',
            'supervisor.rpcinterface_factory = '
            'supervisor.rpcinterface:make_main_rpcinterface',
            '',
            f'[eventlistener:{WATCHER}]',
            'command = ' + _quote(shlex.join([
                sys.executable, '-m', 'trovestack.cloud.crashwatch',
                str(self.record), str(self.log_dir)])),
            'events = PROCESS_STATE_EXITED,PROCESS_STATE_BACKOFF,'
            'PROCESS_STATE_FATAL',
            'autostart = true',
            'autorestart = true',
            # It keeps nothing but its record, written atomically: no
            # need to wait for it (SIGTERM took it 5 s while it read).
            'stopsignal = KILL',
            f'stdout_logfile = {_quote(self.log_dir / (WATCHER + ".log"))}',
            'stdout_logfile_maxbytes = 0',
            'redirect_stderr = false',
            f'stderr_logfile = {_quote(self.log_dir / (WATCHER + ".log"))}',
            'stderr_logfile_maxbytes = 0',
            '',
            '[include]',
            f'files = {_quote(self.programs_dir)}/*.conf',
            '',
        ]
        files.write_atomic(self.config, '\n'.join(lines), mode=0o600)

    def _kill_orphans(self) -> None:
        """Stop processes a killed supervisord of ours left running."""
        orphans = owned_processes(self.root)
        if not orphans:
            return
        LOG.info('stopping %d processes a stopped supervisor left running',
                 len(orphans))
        for proc in orphans:
            _signal(proc, 'terminate')
        _, alive = psutil.wait_procs(orphans, timeout=STOP_TIMEOUT)
        for proc in alive:
            _signal(proc, 'kill')
        psutil.wait_procs(alive, timeout=STOP_TIMEOUT)

    def shutdown(self) -> bool:
        """Stop every program and supervisord itself; True if it ran."""
        if not self.answers():
            self._kill_orphans()
            return False
        pid = self._call('supervisor.getPID')
        try:
            proc = psutil.Process(pid)
        except psutil.Error:
            proc = None
        try:
            # Stopped first: in its own shutdown supervisord waits 5 s
            # before it signals an event listener (cloud down took 12 s).
            self._stop_quietly(WATCHER)
            self._call('supervisor.shutdown')
        except (OSError, xmlrpc.client.Error, http.client.HTTPException):
            pass
        if proc is not None:
            try:
                proc.wait(60)
            except psutil.TimeoutExpired:
                _signal(proc, 'kill')
        self._kill_orphans()
        self.socket.unlink(missing_ok=True)
        return True

    # ---------------------------------------------------------- programs
    def _section(self, program: Program) -> str:
        log = self.log_file(program)
        env = {OWNER_VARIABLE: str(self.root), **program.env}
        return '\n'.join([
            f'[program:{program.name}]',
            'command = ' + _quote(shlex.join(program.full_argv())),
            f'environment = {_environment(env)}',
            f'directory = {_quote(log.parent)}',
            *([f'user = {program.user}'] if program.user else []),
            'autostart = false',
            'autorestart = true',
            f'startsecs = {STARTSECS}',
            f'startretries = {STARTRETRIES}',
            f'stopwaitsecs = {int(program.stop_timeout)}',
            'stopasgroup = true',
            'killasgroup = true',
            'redirect_stderr = true',
            f'stdout_logfile = {_quote(log)}',
            'stdout_logfile_maxbytes = 0',
            'stdout_logfile_backups = 0',
            '',
        ])

    def log_file(self, program: Program | str) -> pathlib.Path:
        if isinstance(program, str):
            return self.log_dir / f'{program}.log'
        return self.log_dir / (program.log or f'{program.name}.log')

    def declare(self, programs: Iterable[Program]) -> None:
        """Make supervisord know the programs as declared now: new ones
        added, changed ones (argv, environment) replaced (stopped first
        when they ran)."""
        self.ensure()
        with files.exclusive_lock(self._lock_file()):
            wanted = {}
            for program in programs:
                path = self.programs_dir / f'{program.name}.conf'
                text = self._section(program)
                try:
                    same = path.read_text() == text
                except FileNotFoundError:
                    same = False
                if not same:
                    files.write_atomic(path, text, mode=0o600)
                wanted[program.name] = same
            if all(wanted.values()) and self._known(wanted):
                return
            added, changed, _removed = self._call(
                'supervisor.reloadConfig')[0]
            for name in changed:
                self._stop_quietly(name)
                self._call('supervisor.removeProcessGroup', name)
                self._call('supervisor.addProcessGroup', name)
            for name in added:
                self._call('supervisor.addProcessGroup', name)

    def _known(self, names: Iterable[str]) -> bool:
        known = {info['name'] for info in self._infos()}
        return set(names) <= known

    def forget(self, name: str) -> None:
        """Stop a program and remove it from supervisord."""
        if not self.answers():
            (self.programs_dir / f'{name}.conf').unlink(missing_ok=True)
            return
        self._stop_quietly(name)
        try:
            self._call('supervisor.removeProcessGroup', name)
        except xmlrpc.client.Fault:
            pass
        (self.programs_dir / f'{name}.conf').unlink(missing_ok=True)

    def _infos(self) -> list[dict[str, Any]]:
        try:
            return self._call('supervisor.getAllProcessInfo')
        except (OSError, xmlrpc.client.Error, http.client.HTTPException):
            return []

    def statuses(self) -> dict[str, Status]:
        """{name: Status} of every declared program (the crash watcher
        left out)."""
        record = read_record(self.record)
        result = {}
        for info in self._infos():
            if info['name'] == WATCHER:
                continue
            result[info['name']] = self._status(info, record)
        return result

    @staticmethod
    def _status(info: dict[str, Any], record: dict[str, Any]) -> Status:
        crash = record.get(info['name'], {})
        return Status(info['name'], info['statename'], info['pid'] or None,
                      crash.get('crashes', 0), crash.get('last_error', ''),
                      crash.get('given_up', False))

    def status(self, name: str) -> Status:
        try:
            info = self._call('supervisor.getProcessInfo', name)
        except (OSError, xmlrpc.client.Error, http.client.HTTPException):
            return Status(name, STOPPED, None)
        return self._status(info, read_record(self.record))

    def pid(self, name: str) -> int | None:
        """The program's pid while it runs, else None."""
        status = self.status(name)
        return status.pid if status.running else None

    def start(self, program: Program, timeout: float = START_TIMEOUT) -> int:
        """Start the program unless it runs, wait until its probe says
        ready; its pid.  SupervisionError, the log's tail in it, when it
        dies or is not ready in time (it is stopped again then)."""
        self.declare([program])
        try:
            if self.status(program.name).state not in (RUNNING, STARTING):
                forget_crashes(self.record, program.name)
                self._start_process(program.name)
            return self.await_ready(program, timeout)
        except SupervisionError:
            self._stop_quietly(program.name)
            raise

    def _start_process(self, name: str) -> None:
        try:
            self._call('supervisor.startProcess', name, False)
        except xmlrpc.client.Fault as fault:
            if 'SPAWN_ERROR' in fault.faultString:
                raise self.failure(name, 'exited during start-up') from None
            if 'ALREADY_STARTED' not in fault.faultString:
                raise self.failure(
                    name, f'not started: {fault.faultString}') from None

    def await_ready(self, program: Program, timeout: float) -> int:
        """Wait until the program runs and its probe answers; its pid."""
        latest = {}

        def died() -> str | None:
            # wait_for asks this first: ready() uses the same reading.
            status = latest['status'] = self.status(program.name)
            if status.state in FAILED_STATES or status.state == STOPPED:
                return 'exited during start-up'
            return None

        def ready() -> int | None:
            status = latest['status']
            if not status.running:
                return None
            if program.ready is None:
                # Without a probe: once it stayed up STARTSECS.
                return status.pid if status.state == RUNNING else None
            return status.pid if program.ready() else None

        try:
            return waiting.wait_for(program.name, ready, timeout,
                                    failed=died)
        except waiting.WaitFailed as exc:
            raise self.failure(program.name, str(exc)) from None
        except waiting.WaitTimeout:
            raise self.failure(program.name,
                               f'not ready within {timeout:g} s') from None

    def failure(self, name: str, what: str) -> SupervisionError:
        log = self.log_file(name)
        return SupervisionError(f'{name} {what}; last lines of {log}:\n'
                                f'{processes.log_tail(log, 8)}')

    def stop(self, name: str) -> bool:
        """Stop the program (its whole process group); True if it ran."""
        if not self.answers():
            return False
        return self._stop_quietly(name)

    def _stop_quietly(self, name: str) -> bool:
        try:
            info = self._call('supervisor.getProcessInfo', name)
        except xmlrpc.client.Fault:
            return False
        if info['statename'] in (STOPPED, EXITED, FATAL):
            return False
        try:
            self._call('supervisor.stopProcess', name, True, timeout=120.0)
        except xmlrpc.client.Fault as fault:
            if 'NOT_RUNNING' not in fault.faultString:
                raise
        return info['statename'] in (RUNNING, STARTING, STOPPING)

    def rss_kib(self, name: str) -> int:
        """Resident memory of the program and its descendants (KiB)."""
        pid = self.pid(name)
        return tree_rss_kib(pid) if pid else 0


def owned_processes(root: pathlib.Path | str) -> list[psutil.Process]:
    """Live processes of the supervisor of ``root`` (it and every program
    carry the directory in their environment), this process and its
    parents left out."""
    mine = {os.getpid(), *(p.pid for p in psutil.Process().parents())}
    found = []
    for proc in psutil.process_iter(['pid']):
        if proc.pid in mine:
            continue
        try:
            if proc.environ().get(OWNER_VARIABLE) == str(root) and \
                    proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except (psutil.Error, OSError):
            continue
    return found


def for_record(recorded: pathlib.Path | str | None, root: pathlib.Path | str,
               log_dir: pathlib.Path | str) -> 'Supervisor':
    """The supervisor a program's record names (the local cloud's), or
    the program's own one in ``root`` logging to ``log_dir``."""
    if recorded:
        return Supervisor(recorded)
    return Supervisor(root, log_dir)


def start_in_order(nodes: Sequence[Program | Step], start: Callable,
                   parallel: int = 4) -> None:
    """Start programs and run steps in dependency order, each as soon as
    everything it needs is ready, at most ``parallel`` at once.

    ``start(program)`` starts and awaits one program.  A need that is not
    among ``nodes`` is taken as ready.  The first failure stops the
    others from starting and is raised once the running ones returned.
    """
    order(nodes)  # no cycles
    names = {node.name for node in nodes}
    done = {name: threading.Event() for name in names}
    abort = threading.Event()
    slots = threading.Semaphore(parallel)

    def bring_up(node: Program | Step) -> None:
        try:
            for need in node.needs:
                if need not in names:
                    continue
                while not done[need].wait(0.1):
                    if abort.is_set():
                        return
            with slots:
                if abort.is_set():
                    return
                began = time.monotonic()
                if isinstance(node, Step):
                    node.run()
                else:
                    start(node)
                LOG.debug('%s: ready after %.1f s', node.name,
                          time.monotonic() - began)
            done[node.name].set()
        except BaseException:
            abort.set()
            raise

    with concurrent.futures.ThreadPoolExecutor(max(len(nodes), 1)) as pool:
        futures = [pool.submit(bring_up, node) for node in nodes]
        errors = [error for error in (future.exception()
                                      for future in futures)
                  if error is not None]
    if errors:
        raise errors[0]


def order(nodes: Sequence[Program | Step]) -> list[str]:
    """The names of nodes in a dependency order (needs first), stable."""
    by_name = {node.name: node for node in nodes}
    result, seen = [], set()

    def visit(name: str, path: tuple[str, ...] = ()) -> None:
        if name in seen or name not in by_name:
            return
        if name in path:
            raise ValueError(f'dependency cycle: {" -> ".join(path)}')
        for need in by_name[name].needs:
            visit(need, (*path, name))
        seen.add(name)
        result.append(name)

    for node in nodes:
        visit(node.name)
    return result


def read_record(path: pathlib.Path | str) -> dict[str, Any]:
    try:
        return json.loads(pathlib.Path(path).read_text())
    except (OSError, ValueError):
        return {}


def forget_crashes(path: pathlib.Path | str, name: str) -> None:
    """A program started by us begins a new crash history."""
    record = read_record(path)
    if record.pop(name, None) is not None:
        files.write_atomic(path, json.dumps(record, indent=2), mode=0o600)


def tree_rss_kib(pid: int) -> int:
    """VmRSS of pid plus every descendant (KiB)."""
    try:
        proc = psutil.Process(pid)
        family = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for member in family:
        try:
            total += member.memory_info().rss // 1024
        except psutil.Error:
            pass
    return total


def _signal(proc: psutil.Process, how: str) -> None:
    try:
        getattr(proc, how)()
    except psutil.Error:
        pass


class _UnixTransport(xmlrpc.client.Transport):
    """XML-RPC over supervisord's unix socket."""

    def __init__(self, path: pathlib.Path | str, timeout: float) -> None:
        super().__init__()
        self._path = str(path)
        self._timeout = timeout

    def make_connection(self, host: object) -> '_UnixConnection':
        return _UnixConnection(self._path, self._timeout)


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: pathlib.Path | str, timeout: float) -> None:
        super().__init__('localhost', timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._path)  # type: ignore[arg-type]  # AF_UNIX: path-like
        except OSError:
            sock.close()
            raise
        self.sock = sock
