"""Background processes with pid files and log files."""

import os
import pathlib
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request

from trovestack.cloud import LocalCloudError

TERM_WAIT = 10.0
EXEC_SETTLE = 2.0  # s a process may look empty while it execs
LOOPBACK = '127.0.0.1'


class ProcessError(LocalCloudError):
    """A process could not be started or did not become ready."""


def free_port(host=LOOPBACK):
    """A TCP port on host that nobody listens on now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def port_is_free(port, host=LOOPBACK):
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def log_tail(path, lines=15):
    """The last lines of a log file, for error reports."""
    try:
        text = pathlib.Path(path).read_text(errors='replace')
    except OSError:
        return ''
    return '\n'.join(text.splitlines()[-lines:])


def service_env(extra=None):
    """The environment every service process runs with."""
    env = dict(os.environ)
    # Without a network, eventlet's green DNS makes imports take ~30 s.
    env['EVENTLET_NO_GREENDNS'] = 'yes'
    env.update(extra or {})
    return env


def run_checked(argv, log_path, env=None, what=None):
    """Run a set-up command, appending its output to log_path."""
    with open(log_path, 'ab') as log:
        result = subprocess.run(argv, stdout=log, stderr=subprocess.STDOUT,
                                env=service_env(env), stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        what = what or pathlib.Path(argv[0]).name
        raise ProcessError(
            f'{what} failed (exit {result.returncode}); last lines of '
            f'{log_path}:\n{log_tail(log_path)}')


def start(argv, pid_file, log_path, env=None):
    """Start argv in its own session, detached; return its pid.

    It runs in the directory of its log, so whatever a daemon drops in its
    working directory (Erlang crash dumps, for one) stays in the state
    directory instead of the caller's.
    """
    log = open(log_path, 'ab')
    try:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL,
                                cwd=pathlib.Path(log_path).parent,
                                env=service_env(env), start_new_session=True)
    finally:
        log.close()
    pathlib.Path(pid_file).write_text(f'{proc.pid}\n')
    return proc.pid


def read_pid(pid_file, marker):
    """The pid in pid_file if that process is alive and ours, else None.

    A process is ours when its command line or its environment mentions
    marker (the state directory), so a recycled pid never gets signalled.
    """
    try:
        pid = int(pathlib.Path(pid_file).read_text().strip())
    except (OSError, ValueError):
        return None
    seen = _identity(pid)
    if seen is None or str(marker).encode() not in seen:
        return None
    return pid


def _identity(pid, settle=EXEC_SETTLE):
    """Command line and environment of pid, or None if it is gone.

    While a process is inside execve (``ip netns exec`` starting its
    command, a script's interpreter loading) the kernel shows an empty
    command line or environment for a moment; measured here, a process
    read in its first 50 ms after start looked empty or half-read 198
    times in 200. Such a read is tried again instead of taken for a
    foreign process. None for a zombie.
    """
    proc = pathlib.Path(f'/proc/{pid}')
    deadline = time.monotonic() + settle
    while True:
        try:
            cmdline = (proc / 'cmdline').read_bytes()
            environ = (proc / 'environ').read_bytes()
        except OSError:
            return None
        if _is_zombie(pid):
            return None
        if (cmdline and environ) or time.monotonic() > deadline:
            return cmdline + environ
        time.sleep(0.01)


def _is_zombie(pid):
    try:
        stat = pathlib.Path(f'/proc/{pid}/stat').read_text()
    except OSError:
        return True
    return stat.rsplit(')', 1)[1].split()[0] == 'Z'


def stop(pid_file, marker, wait=TERM_WAIT):
    """Stop the process group in pid_file if it is ours; True if it ran."""
    pid = read_pid(pid_file, marker)
    pathlib.Path(pid_file).unlink(missing_ok=True)
    if pid is None:
        return False
    _signal_group(pid, signal.SIGTERM)
    if not wait_gone(pid, wait):
        _signal_group(pid, signal.SIGKILL)
        wait_gone(pid, wait)
    return True


def wait_gone(pid, timeout):
    """Wait until pid has exited; False if it still runs after timeout."""
    deadline = time.monotonic() + timeout
    while is_alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def _signal_group(pid, sig):
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass


def is_alive(pid):
    """True when pid runs (not a zombie); reaps it if it is our child."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
    return pathlib.Path(f'/proc/{pid}').exists() and not _is_zombie(pid)


def http_answers(url, timeout=2.0):
    """True when url answers HTTP at all (any status code)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout):
            return True
    except urllib.error.HTTPError:
        return True
    except (OSError, ValueError):
        return False


def wait_until(name, pid, ready, log_path, timeout, waiting_for):
    """Wait until ready() is true; fail early if the process dies."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not is_alive(pid):
            raise ProcessError(
                f'{name} exited during start-up; last lines of {log_path}:\n'
                f'{log_tail(log_path)}')
        if ready():
            return
        time.sleep(0.2)
    raise ProcessError(
        f'{name} did not {waiting_for} within {timeout:g} s; last lines '
        f'of {log_path}:\n{log_tail(log_path)}')


def wait_until_ready(name, pid, url, log_path, timeout):
    """Wait until url answers; fail early if the process dies."""
    wait_until(name, pid, lambda: http_answers(url), log_path, timeout,
               f'answer at {url}')
