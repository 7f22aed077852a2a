"""Long-running processes of the compute layer: start, probe, stop.

A :class:`Daemon` says how to run one process (inside the namespace or on
the host) and how to tell that it is ready.  Every process carries
``TROVESTACK_COMPUTE_DIR`` in its environment, so a recycled pid is never
signalled (see :func:`trovestack.cloud.processes.read_pid`).
"""

import dataclasses
import os
import pathlib
import socket
import subprocess
import time
from collections.abc import Callable
from collections.abc import Sequence

from trovestack.cloud import LocalCloudError
from trovestack.cloud import processes

OWNER_VARIABLE = 'TROVESTACK_COMPUTE_DIR'


class ComputeError(LocalCloudError):
    """A compute-layer service could not be started."""


def unix_socket_answers(path) -> bool:
    """True when something accepts connections on the unix socket."""
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(1.0)
        try:
            sock.connect(str(path))
        except OSError:
            return False
        return True


@dataclasses.dataclass(frozen=True)
class Daemon:
    """One process: its argv, where it runs and when it counts as ready."""

    name: str
    argv: Sequence[str]
    netns: str | None = None
    ready: Callable[[], bool] | None = None
    env: dict = dataclasses.field(default_factory=dict)

    def full_argv(self) -> list[str]:
        argv = [str(arg) for arg in self.argv]
        if self.netns:
            return ['ip', 'netns', 'exec', self.netns, *argv]
        return argv


@dataclasses.dataclass(frozen=True)
class Health:
    """How one process is doing, for ``cloud status``."""

    name: str
    condition: str
    pid: int | None
    where: str


class Runner:
    """Starts and stops daemons with pid and log files under one root."""

    def __init__(self, root, log_dir, run_dir):
        self.root = pathlib.Path(root)
        self.log_dir = pathlib.Path(log_dir)
        self.run_dir = pathlib.Path(run_dir)

    def log_file(self, name):
        return self.log_dir / f'{name}.log'

    def pid_file(self, name):
        return self.run_dir / f'{name}.pid'

    def env(self, extra=None):
        return {OWNER_VARIABLE: str(self.root), **(extra or {})}

    def pid(self, name):
        return processes.read_pid(self.pid_file(name), self.root)

    def start(self, daemon: Daemon, timeout: float = 60.0) -> int:
        """Start daemon unless it runs; wait until it is ready."""
        pid = self.pid(daemon.name)
        if pid is not None:
            return pid
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_file(daemon.name)
        pid = processes.start(daemon.full_argv(), self.pid_file(daemon.name),
                              log, self.env(daemon.env))
        deadline = time.monotonic() + timeout
        while True:
            if not processes.is_alive(pid):
                raise self.failure(daemon.name, 'exited during start-up')
            if daemon.ready is None or daemon.ready():
                return pid
            if time.monotonic() > deadline:
                raise self.failure(daemon.name,
                                   f'not ready within {timeout:g} s')
            time.sleep(0.2)

    def failure(self, name, what):
        log = self.log_file(name)
        return ComputeError(f'{name} {what}; last lines of {log}: '
                            f'{processes.log_tail(log, 5)}')

    def stop(self, name) -> bool:
        return processes.stop(self.pid_file(name), self.root)

    def health(self, daemon: Daemon) -> Health:
        pid = self.pid(daemon.name)
        if pid is None:
            condition = 'stopped'
        elif daemon.ready is None or daemon.ready():
            condition = 'running'
        else:
            condition = 'not answering'
        return Health(daemon.name, condition, pid,
                      f'netns {daemon.netns}' if daemon.netns else 'host')

    def rss_kib(self, name) -> int:
        """Resident memory of the process and its children (KiB)."""
        pid = self.pid(name)
        return tree_rss_kib(pid) if pid else 0


def tree_rss_kib(pid: int) -> int:
    """VmRSS of pid plus every descendant."""
    children = {}
    for stat in pathlib.Path('/proc').glob('[0-9]*/stat'):
        try:
            fields = stat.read_text().rsplit(')', 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        todo.extend(children.get(current, ()))
        try:
            for line in pathlib.Path(f'/proc/{current}/status').open():
                if line.startswith('VmRSS:'):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


def run(argv, *, netns=None, check=True, env=None):
    """Run a short command (optionally inside netns); its CompletedProcess."""
    full = ['ip', 'netns', 'exec', netns, *argv] if netns else list(argv)
    result = subprocess.run([str(a) for a in full], capture_output=True,
                            text=True, env={**os.environ, **(env or {})})
    if check and result.returncode != 0:
        raise ComputeError(f'{" ".join(map(str, argv))} failed: '
                           f'{(result.stderr or result.stdout).strip()}')
    return result
