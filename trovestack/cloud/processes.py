"""Small helpers about processes and ports: free loopback ports, set-up
commands, log tails, HTTP probes.  Long-running processes are
:mod:`trovestack.cloud.supervision` programs."""

import os
import pathlib
import socket
import subprocess
import urllib.error
import urllib.request
from collections.abc import Callable
from collections.abc import Collection
from collections.abc import Iterable
from collections.abc import Mapping

from trovestack.cloud import LocalCloudError

TERM_WAIT = 10.0
EXEC_SETTLE = 2.0  # s a process may look empty while it execs
LOOPBACK = '127.0.0.1'


class ProcessError(LocalCloudError):
    """A process could not be started or did not become ready."""


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port on host that nobody listens on now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def port_is_free(port: int, host: str = LOOPBACK) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def allocate_ports(names: Iterable[str], *, base_port: int = 0,
                   existing: Mapping[str, int] | None = None,
                   counts: Mapping[str, int] | None = None,
                   taken: Collection[int] = (),
                   usable: Callable[[int], object] | None = None,
                   host: str = LOOPBACK,
                   fallback: bool = True) -> dict[str, int]:
    """The cloud's one port policy: {name: port} for every name, keeping
    ``existing`` ports that are still ``usable(port)`` (default: always);
    a new one is ``base_port`` + the name's index in ``names`` when a base
    is given and that port is free, else any free port on host (with
    ``fallback=False`` the base's port all the same: the user asked for
    it, and starting there says it is taken).  A name with
    ``counts[name]`` > 1 gets the first of that many consecutive free
    ports.  No port is given twice, nor one in ``taken``."""
    counts = counts or {}
    usable = usable or (lambda port: True)
    ports = {name: port for name, port in (existing or {}).items()
             if port and usable(port)}
    used = {*taken, *ports.values()}
    for index, name in enumerate(names):
        if name in ports:
            continue
        count = counts.get(name, 1)
        wanted = base_port + index if base_port else 0
        run = range(wanted, wanted + count)
        if not wanted or (fallback and (used & set(run) or not all(
                port_is_free(port, host) for port in run))):
            wanted = _free_run(count, used, host)
        ports[name] = wanted
        used.update(range(wanted, wanted + count))
    return ports


def _free_run(count: int, used: set[int], host: str) -> int:
    """The first of ``count`` consecutive free ports, none in used."""
    for _ in range(100):
        first = free_port(host)
        run = range(first, first + count)
        if run[-1] <= 65535 and not used & set(run) and all(
                port_is_free(port, host) for port in run):
            return first
    raise LookupError(f'no {count} consecutive free ports on {host}')


def log_tail(path: pathlib.Path | str, lines: int = 15) -> str:
    """The last lines of a log file, for error reports."""
    try:
        text = pathlib.Path(path).read_text(errors='replace')
    except OSError:
        return ''
    return '\n'.join(text.splitlines()[-lines:])


def service_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment every service process runs with."""
    env = dict(os.environ)
    # Without a network, eventlet's green DNS makes imports take ~30 s.
    env['EVENTLET_NO_GREENDNS'] = 'yes'
    env.update(extra or {})
    return env


def run_checked(argv: list[str], log_path: pathlib.Path | str,
                env: Mapping[str, str] | None = None,
                what: str | None = None) -> None:
    """Run a set-up command, appending its output to log_path."""
    with open(log_path, 'ab') as log:
        result = subprocess.run(argv, stdout=log, stderr=subprocess.STDOUT,
                                env=service_env(env), stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        what = what or pathlib.Path(argv[0]).name
        raise ProcessError(
            f'{what} failed (exit {result.returncode}); last lines of '
            f'{log_path}:\n{log_tail(log_path)}')


def http_answers(url: str, timeout: float = 2.0) -> bool:
    """True when url answers HTTP at all (any status code)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout):
            return True
    except urllib.error.HTTPError:
        return True
    except (OSError, ValueError):
        return False
