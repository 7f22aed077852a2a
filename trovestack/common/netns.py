"""Named network namespaces (``ip netns``): create, run inside, delete.

Guest traffic stays inside namespaces that we create: every address other
than loopback lives only in one of them, and they are removed (with every
process still running inside) when the work is done, also on an exception,
Ctrl-C or SIGTERM::

    with netns.namespace('trovestack-verify') as ns:
        netns.add_tap(ns, 'tap0', '10.99.0.1/24')
        ns.run(['ip', 'addr'])
        proc = ns.popen(['qemu-system-x86_64', ...])
"""

import contextlib
import dataclasses
import os
import pathlib
import signal
import subprocess
import threading
import types
from collections.abc import Iterator
from collections.abc import Sequence
from typing import Any
from typing import NoReturn

import psutil

from trovestack.common import waiting
from trovestack.common.errors import UserError

NETNS_DIR = pathlib.Path('/run/netns')


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP arrived: unwind like Ctrl-C so cleanup runs."""


@dataclasses.dataclass(frozen=True)
class Namespace:
    """A named network namespace that exists on this host."""

    name: str

    def argv(self, argv: Sequence[str]) -> list[str]:
        """The command line that runs ``argv`` inside the namespace."""
        return inside(self.name, argv)

    def run(self, argv: Sequence[str], *, check: bool = True,
            **kwargs: Any) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` inside the namespace and wait (text output)."""
        kwargs.setdefault('capture_output', True)
        kwargs.setdefault('text', True)
        return subprocess.run(self.argv(argv), check=check, **kwargs)

    def popen(self, argv: Sequence[str],
              **kwargs: Any) -> subprocess.Popen[str]:
        """Start ``argv`` inside the namespace; the caller waits."""
        return subprocess.Popen(self.argv(argv), **kwargs)

    def pids(self) -> list[int]:
        """Processes running inside the namespace."""
        return pids(self.name)


def inside(name: str | None,
           argv: Sequence[str | os.PathLike[str]]) -> list[str]:
    """The command line that runs ``argv`` inside namespace ``name`` (as
    it is when ``name`` is None: in the caller's namespace)."""
    args = [str(arg) for arg in argv]
    return ['ip', 'netns', 'exec', name, *args] if name else args


def _ip(*args: str) -> subprocess.CompletedProcess:
    result = subprocess.run(['ip', *args], capture_output=True, text=True)
    if result.returncode != 0:
        raise UserError('ip %s failed: %s' % (
            ' '.join(args), result.stderr.strip() or result.returncode))
    return result


def exists(name: str) -> bool:
    return (NETNS_DIR / name).exists()


def create(name: str) -> Namespace:
    """Create the namespace (with its loopback up); fails if it exists."""
    if os.geteuid() != 0:
        raise UserError('Network namespaces need root')
    if exists(name):
        raise UserError('Network namespace %s already exists' % name)
    _ip('netns', 'add', name)
    namespace_ = Namespace(name)
    try:
        namespace_.run(['ip', 'link', 'set', 'lo', 'up'])
    except subprocess.CalledProcessError as e:
        delete(name)
        raise UserError('Cannot bring up lo in %s: %s' % (
            name, e.stderr.strip())) from e
    return namespace_


def pids(name: str) -> list[int]:
    if not exists(name):
        return []
    result = subprocess.run(['ip', 'netns', 'pids', name],
                            capture_output=True, text=True)
    return [int(pid) for pid in result.stdout.split() if pid.isdigit()]


def _kill_all(name: str, timeout: float) -> None:
    """SIGTERM everything inside, then SIGKILL what is left."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids(name):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        try:
            waiting.wait_for(f'processes in {name} gone',
                             lambda: not pids(name), timeout, interval=0.1)
            return
        except waiting.WaitTimeout:
            continue


def delete(name: str, *, timeout: float = 10.0) -> bool:
    """Stop every process inside and delete the namespace (its links go
    with it). Returns False when there was nothing to delete."""
    if not exists(name):
        return False
    _kill_all(name, timeout)
    _ip('netns', 'delete', name)
    return True


def add_tap(namespace_: Namespace, ifname: str, address: str) -> None:
    """A tap device inside the namespace, up, with ``address`` (CIDR) on
    the namespace side; qemu attaches to it with ``-netdev tap``."""
    for argv in (['ip', 'tuntap', 'add', 'dev', ifname, 'mode', 'tap'],
                 ['ip', 'addr', 'add', address, 'dev', ifname],
                 ['ip', 'link', 'set', ifname, 'up']):
        result = namespace_.run(argv, check=False)
        if result.returncode != 0:
            raise UserError('%s in %s failed: %s' % (
                ' '.join(argv), namespace_.name, result.stderr.strip()))


def owned_name(prefix: str) -> str:
    """A namespace name that records this process (its pid and start
    time), for stale cleanup."""
    return '%s-%d-%d' % (prefix, os.getpid(), _started(os.getpid()) or 0)


def _started(pid: int) -> int | None:
    """The process's start time (whole seconds since the epoch), or None
    when it is gone."""
    try:
        return int(psutil.Process(pid).create_time())
    except psutil.Error:
        return None


def _owner_alive(owner: str) -> bool:
    """Whether the process an owned name records still runs: the same pid
    started at the same time (a reused pid is somebody else)."""
    parts = owner.split('-')
    if not all(part.isdigit() for part in parts) or len(parts) > 2:
        return True  # not a name we made: leave it
    started = _started(int(parts[0]))
    if started is None:
        return False
    return len(parts) == 1 or abs(started - int(parts[1])) <= 1


def delete_stale(prefix: str) -> list[str]:
    """Delete ``owned_name(prefix)`` namespaces whose process is gone (a
    run that was SIGKILLed). Returns the names deleted."""
    deleted = []
    for path in NETNS_DIR.glob(prefix + '-*') if NETNS_DIR.is_dir() else ():
        if not _owner_alive(path.name[len(prefix) + 1:]):
            if delete(path.name):
                deleted.append(path.name)
    return deleted


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """Turn SIGTERM/SIGHUP into Terminated (a KeyboardInterrupt) while the
    block runs, so ``finally`` clauses clean up. Only in the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def _raise(signum: int, frame: types.FrameType | None) -> NoReturn:
        raise Terminated('terminated by signal %d' % signum)

    saved = {sig: signal.signal(sig, _raise)
             for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def namespace(name: str) -> Iterator[Namespace]:
    """Create ``name``; on leaving (normally, by an exception, Ctrl-C or
    SIGTERM/SIGHUP) stop what runs inside and delete it."""
    with terminate_as_interrupt():
        created = create(name)
        try:
            yield created
        finally:
            delete(name)
