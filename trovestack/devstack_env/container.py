"""A systemd container in a network namespace of its own, and its end.

``boot`` mounts an overlay of a staged rootfs (the cache stays as it
is), makes the namespace (a veth pair inside it: ``eth0`` with the
container's address and a default route, so that devstack finds a
HOST_IP; nothing leaves the namespace), puts ``systemd-nspawn -b`` in
cgroups of its own and waits until systemd inside says ``running``.
``run`` enters the container's namespaces through its leader process
(``machinectl``/``systemd-run -M`` need systemd as the host's PID 1).
``stop`` shuts it down and removes all it made: processes, mounts,
cgroup directories, /run/systemd/nspawn entries, the namespace and its
links.  Processes are known by pid and start time, so a reused pid is
never taken for the container's.
"""

import contextlib
import dataclasses
import json
import logging
import os
import pathlib
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence
from typing import IO
from typing import Any

import psutil

from trovestack.common import mounts
from trovestack.common import netns
from trovestack.common import results
from trovestack.common import waiting
from trovestack.common.errors import UserError
from trovestack.common.results import Row
from trovestack.devstack_env import layout

LOG = logging.getLogger(__name__)

CGROUP_ROOT = pathlib.Path('/sys/fs/cgroup')
# The hierarchies systemd uses for its own bookkeeping (hybrid: the
# named v1 one and the unified one; pure v2: the root itself).
CGROUP_HIERARCHIES = ('systemd', 'unified')
NSPAWN_RUN = pathlib.Path('/run/systemd/nspawn')
# Inside the namespace: the container's address on eth0, and a gateway
# no one answers for (devstack takes HOST_IP from the default route).
ADDRESS = '10.208.0.2'
PREFIX = 24
GATEWAY = '10.208.0.1'
# Beyond nspawn's defaults: the network inside the namespace (bridges,
# iptables, addresses), and locked memory (ovs-vswitchd --mlockall).
# Nothing that reaches the host's clock, modules or raw devices.
CAPABILITIES = ('CAP_NET_ADMIN', 'CAP_IPC_LOCK')
BOOT_TIMEOUT = 180.0
STOP_TIMEOUT = 150.0
READY_STATES = ('running',)
DONE_STATES = ('running', 'degraded', 'maintenance', 'stopping')


class ContainerError(UserError):
    """The container could not be started, reached or taken down."""


@dataclasses.dataclass(frozen=True)
class Bind:
    """A host path bind-mounted into the container."""

    source: str
    target: str
    read_only: bool = True

    def option(self) -> str:
        flag = '--bind-ro' if self.read_only else '--bind'
        return f'{flag}={self.source}:{self.target}'


@dataclasses.dataclass
class Record:
    """What a container is made of, saved beside it (container.json)."""

    name: str
    machine: str
    namespace: str
    lower: str
    merged: str
    address: str
    cgroups: list[str]
    nspawn_pid: int = 0
    nspawn_started: float = 0.0
    leader_pid: int = 0
    leader_started: float = 0.0
    booted_seconds: float = 0.0


@dataclasses.dataclass(frozen=True)
class Booted:
    """A running container and how its boot went."""

    record: Record
    state: str
    seconds: float


# -- processes by pid and start time ---------------------------------------


def started(pid: int) -> float | None:
    """The process's start time, or None when there is no such process."""
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


def same_process(pid: int, start: float) -> bool:
    """Whether ``pid`` is still the process that started at ``start`` (a
    zombie has ended: it is reaped when it is ours)."""
    if pid <= 0:
        return False
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            _reap(pid)
            return False
        return abs(process.create_time() - start) < 0.5
    except psutil.Error:
        return False


def _pid_namespace(pid: int) -> str | None:
    try:
        return os.readlink(f'/proc/{pid}/ns/pid')
    except OSError:
        return None


def find_leader(nspawn_pid: int) -> int | None:
    """The container's PID 1 as the host sees it: the first process
    below nspawn that lives in another PID namespace."""
    own = _pid_namespace(nspawn_pid)
    try:
        children = psutil.Process(nspawn_pid).children(recursive=True)
    except psutil.Error:
        return None
    for child in children:
        ns = _pid_namespace(child.pid)
        if ns is not None and own is not None and ns != own:
            return child.pid
    return None


# -- cgroups ------------------------------------------------------------------


def cgroup_dirs(name: str, root: pathlib.Path | None = None) -> list[str]:
    """The cgroup directories named ``name`` a container may have: one in
    every mounted hierarchy (systemd-nspawn mirrors its cgroup into the
    v1 controllers' hierarchies too)."""
    root = root or CGROUP_ROOT
    if (root / 'cgroup.controllers').exists():     # the unified layout
        return [str(root / name)]
    dirs: dict[str, str] = {}
    for base in sorted(root.iterdir()) if root.is_dir() else ():
        if (base / 'cgroup.procs').exists():
            dirs.setdefault(os.path.realpath(base), str(base / name))
    return list(dirs.values())


def own_cgroups(dirs: Sequence[str]) -> list[str]:
    """Of ``dirs``, the ones nspawn is started in: the hierarchies systemd
    keeps its own books in (named ``systemd`` and the unified one)."""
    return [d for d in dirs if os.path.basename(os.path.dirname(d)) in
            CGROUP_HIERARCHIES or os.path.dirname(d) == str(CGROUP_ROOT)]


def cgroup_pids(directory: str) -> list[int]:
    """Every process in the cgroup directory or below it."""
    found: list[int] = []
    for dirpath, _dirnames, filenames in os.walk(directory):
        if 'cgroup.procs' in filenames:
            with contextlib.suppress(OSError):
                text = pathlib.Path(dirpath, 'cgroup.procs').read_text()
                found.extend(int(pid) for pid in text.split())
    return sorted(set(found))


def _join_cgroups(dirs: Sequence[str]) -> Callable[[], None]:
    def join() -> None:
        for directory in dirs:
            with open(os.path.join(directory, 'cgroup.procs'), 'w') as f:
                f.write('0')
    return join


def remove_cgroups(dirs: Sequence[str]) -> list[str]:
    """rmdir the directories, deepest first; the ones that stay."""
    left = []
    for top in dirs:
        if not os.path.isdir(top):
            continue
        below = [d for d, _, _ in os.walk(top)]
        for directory in sorted(below, key=len, reverse=True):
            try:
                os.rmdir(directory)
            except FileNotFoundError:
                pass
            except OSError as e:
                left.append(f'{directory} ({e.strerror})')
    return left


# -- the namespace ----------------------------------------------------------


# Without arp_ignore the namespace's kernel answers a guest's ARP for the
# trove-mgmt address with the guest tap's MAC: the guest's SYN reaches the
# kernel through the tap, the SYN-ACK goes out through OVN, whose conntrack
# drops it (the guest agent never reached RabbitMQ while ping worked; the
# compute cloud's namespace sets the same).  systemd-sysctl does not run in
# the container (/proc/sys is read-only there but for net).
SYSCTLS = ('net.ipv4.conf.all.arp_ignore=1',
           'net.ipv4.conf.default.arp_ignore=1')


def make_namespace(name: str, address: str = ADDRESS) -> netns.Namespace:
    """The container's network namespace: lo, its SYSCTLS, and a veth
    pair whose ``eth0`` end carries ``address`` and the default route."""
    namespace = netns.create(name)
    try:
        for argv in (['sysctl', '-q', '-w', *SYSCTLS],
                     ['ip', 'link', 'add', 'eth0', 'type', 'veth',
                      'peer', 'name', 'gw0'],
                     ['ip', 'addr', 'add', f'{address}/{PREFIX}',
                      'dev', 'eth0'],
                     ['ip', 'link', 'set', 'eth0', 'up'],
                     ['ip', 'link', 'set', 'gw0', 'up'],
                     ['ip', 'route', 'add', 'default', 'via', GATEWAY]):
            result = namespace.run(argv, check=False)
            if result.returncode != 0:
                raise ContainerError(f'{" ".join(argv)} in {name}: '
                                     f'{result.stderr.strip()}')
    except BaseException:
        netns.delete(name)
        raise
    return namespace


# -- boot ---------------------------------------------------------------------


def _mount_overlay(lower: pathlib.Path, paths: layout.EnvPaths) -> None:
    for directory in (paths.upper, paths.work, paths.merged):
        directory.mkdir(parents=True, exist_ok=True)
    options = (f'lowerdir={lower},upperdir={paths.upper},'
               f'workdir={paths.work}')
    result = subprocess.run(['mount', '-t', 'overlay', 'overlay', '-o',
                             options, str(paths.merged)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise ContainerError(f'overlay mount on {paths.merged}: '
                             f'{result.stderr.strip()}')


def nspawn_argv(record: Record, binds: Sequence[Bind]) -> list[str]:
    """The systemd-nspawn command line of the container."""
    return ['systemd-nspawn', '--quiet', '--boot',
            f'--directory={record.merged}', f'--machine={record.machine}',
            '--register=no', '--keep-unit',
            f'--network-namespace-path={netns.NETNS_DIR / record.namespace}',
            '--resolv-conf=off', '--timezone=off', '--link-journal=no',
            '--console=pipe', f'--capability={",".join(CAPABILITIES)}',
            *[bind.option() for bind in binds]]


def nspawn_env() -> dict[str, str]:
    """nspawn's environment: /proc/sys/net writable inside (devstack sets
    ip_forward and friends there).  nspawn does so by itself only for the
    namespaces it makes; this one is the container's own, and the rest
    of /proc/sys stays read-only."""
    return {**os.environ, 'SYSTEMD_NSPAWN_API_VFS_WRITABLE': 'network'}


def save(paths: layout.EnvPaths, record: Record) -> None:
    paths.root.mkdir(parents=True, exist_ok=True)
    tmp = paths.record.with_suffix('.tmp')
    tmp.write_text(json.dumps(dataclasses.asdict(record), indent=2))
    os.replace(tmp, paths.record)


def load(paths: layout.EnvPaths) -> Record | None:
    try:
        return Record(**json.loads(paths.record.read_text()))
    except FileNotFoundError:
        return None
    except (ValueError, TypeError) as e:
        raise ContainerError(f'{paths.record} is not a container record: '
                             f'{e}') from e


def boot(paths: layout.EnvPaths, lower: pathlib.Path, *,
         binds: Sequence[Bind] = (),
         prepare: Callable[[pathlib.Path], None] | None = None,
         timeout: float = BOOT_TIMEOUT) -> Booted:
    """Boot ``lower`` (a rootfs directory, left untouched) as a container.

    ``prepare(rootfs)`` may write into the container's file system before
    it boots.  On any failure everything made so far is removed again.
    """
    for tool in ('systemd-nspawn', 'nsenter', 'ip', 'mount'):
        if shutil.which(tool) is None:
            raise ContainerError(f'{tool} is missing: run '
                                 'tools/install-test-deps (as root)')
    if os.geteuid() != 0:
        raise ContainerError('booting a container needs root')
    started_at = time.monotonic()
    record = Record(name=paths.name, machine=paths.machine,
                    namespace=paths.namespace, lower=str(lower),
                    merged=str(paths.merged), address=ADDRESS,
                    cgroups=cgroup_dirs(paths.cgroup_name))
    save(paths, record)
    try:
        make_namespace(record.namespace)
        _mount_overlay(lower, paths)
        _write_hosts(paths.merged, record)
        if prepare is not None:
            prepare(paths.merged)
        joined = own_cgroups(record.cgroups)
        for directory in joined:
            os.makedirs(directory, exist_ok=True)
        with open(paths.console_log, 'ab') as console:
            proc = subprocess.Popen(
                nspawn_argv(record, binds), env=nspawn_env(),
                stdin=subprocess.DEVNULL,
                stdout=console, stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_join_cgroups(joined))
        record.nspawn_pid = proc.pid
        record.nspawn_started = started(proc.pid) or 0.0
        save(paths, record)
        failed = _boot_failed(proc, paths)
        leader = waiting.wait_for(
            f'container {record.machine} started', lambda: find_leader(
                proc.pid), timeout, interval=0.1, failed=failed)
        record.leader_pid = leader
        record.leader_started = started(leader) or 0.0
        save(paths, record)
        state = wait_running(record, timeout=timeout, failed=failed)
        record.booted_seconds = round(time.monotonic() - started_at, 1)
        save(paths, record)
        return Booted(record, state, record.booted_seconds)
    except waiting.WaitFailed as e:
        stop(paths)
        raise ContainerError(str(e)) from e
    except waiting.WaitTimeout as e:
        tail = _tail(paths.console_log)
        stop(paths)
        raise ContainerError(f'{e}; console: {tail}') from e
    except BaseException:
        stop(paths)
        raise


def _boot_failed(proc: subprocess.Popen[bytes],
                 paths: layout.EnvPaths) -> Callable[[], str | None]:
    def failed() -> str | None:
        if proc.poll() is None:
            return None
        return (f'systemd-nspawn exited with status {proc.returncode}: '
                f'{_tail(paths.console_log)}')
    return failed


def _tail(path: pathlib.Path, lines: int = 3) -> str:
    try:
        text = path.read_text(errors='replace')
    except OSError:
        return '(no console output)'
    return ' | '.join(text.strip().splitlines()[-lines:]) or '(empty)'


def _write_hosts(rootfs: pathlib.Path, record: Record) -> None:
    (rootfs / 'etc').mkdir(exist_ok=True)
    (rootfs / 'etc' / 'hosts').write_text(
        '127.0.0.1 localhost\n'
        f'{record.address} {record.machine}\n'
        '::1 localhost ip6-localhost ip6-loopback\n')
    (rootfs / 'etc' / 'hostname').write_text(record.machine + '\n')


def wait_running(record: Record, *, timeout: float = BOOT_TIMEOUT,
                 failed: Callable[[], str | None] | None = None) -> str:
    """Wait until systemd inside is done booting; its state.  ``running``
    is what a clean boot reaches; ``degraded`` (a unit failed) ends the
    wait too, and the caller decides."""
    def state() -> str | None:
        value = system_state(record)
        return value if value in DONE_STATES else None

    return waiting.wait_for(f'systemd in {record.machine} running', state,
                            timeout, interval=0.5, failed=failed)


def system_state(record: Record) -> str:
    """``systemctl is-system-running`` inside (``offline`` when the
    container is gone)."""
    if not alive(record):
        return 'offline'
    result = run(record, ['systemctl', 'is-system-running'],
                 capture_output=True, text=True, timeout=30)
    return result.stdout.strip() or 'unknown'


def failed_units(record: Record) -> list[str]:
    result = run(record, ['systemctl', '--failed', '--plain',
                          '--no-legend', '--no-pager'],
                 capture_output=True, text=True, timeout=30)
    return [line.split()[0] for line in result.stdout.splitlines()
            if line.split()]


def alive(record: Record) -> bool:
    return bool(record.leader_pid) and same_process(
        record.leader_pid, record.leader_started)


# -- inside -------------------------------------------------------------------


def enter_argv(record: Record, argv: Sequence[str], *,
               user: str | None = None,
               env: Mapping[str, str] | None = None) -> list[str]:
    """The host command line that runs ``argv`` in the container (as
    ``user`` with a login-like clean environment when given)."""
    inner = [str(arg) for arg in argv]
    if user is not None:
        home = (env or {}).get('HOME', f'/home/{user}')
        base = {'HOME': home, 'USER': user, 'LOGNAME': user,
                'PATH': '/usr/local/sbin:/usr/local/bin:/usr/sbin:'
                        '/usr/bin:/sbin:/bin',
                'LANG': 'C.UTF-8', 'TERM': 'dumb', **(env or {})}
        inner = ['runuser', '-u', user, '--', 'env', '-i',
                 *[f'{k}={v}' for k, v in base.items()], *inner]
    elif env:
        inner = ['env', *[f'{k}={v}' for k, v in env.items()], *inner]
    return ['nsenter', f'--target={record.leader_pid}', '--mount', '--uts',
            '--ipc', '--net', '--pid', '--cgroup', '--root', '--wd', '--',
            *inner]


def run(record: Record, argv: Sequence[str], *, user: str | None = None,
        env: Mapping[str, str] | None = None,
        **kwargs: Any) -> subprocess.CompletedProcess[Any]:
    """Run ``argv`` in the container and wait (subprocess.run's keywords)."""
    if not alive(record):
        raise ContainerError(f'container {record.machine} is not running')
    kwargs.setdefault('stdin', subprocess.DEVNULL)
    return subprocess.run(enter_argv(record, argv, user=user, env=env),
                          **kwargs)


def popen(record: Record, argv: Sequence[str], *, user: str | None = None,
          env: Mapping[str, str] | None = None,
          stdout: IO[Any] | int | None = None) -> subprocess.Popen[bytes]:
    if not alive(record):
        raise ContainerError(f'container {record.machine} is not running')
    return subprocess.Popen(enter_argv(record, argv, user=user, env=env),
                            stdin=subprocess.DEVNULL, stdout=stdout,
                            stderr=subprocess.STDOUT, start_new_session=True)


# -- stop and clean up -----------------------------------------------------


def _pids_of(record: Record | None, paths: layout.EnvPaths) -> list[int]:
    """Processes that are the container's: nspawn, its leader, everything
    in its cgroups and its namespace (never this process)."""
    pids: set[int] = set()
    if record is not None:
        for pid, start in ((record.nspawn_pid, record.nspawn_started),
                           (record.leader_pid, record.leader_started)):
            if pid and same_process(pid, start):
                pids.add(pid)
    dirs = record.cgroups if record else cgroup_dirs(paths.cgroup_name)
    for directory in dirs:
        pids.update(cgroup_pids(directory))
    pids.update(netns.pids(paths.namespace))
    pids.discard(os.getpid())
    return sorted(pids)


def _kill(pids: Sequence[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def _shutdown(record: Record, paths: layout.EnvPaths,
              timeout: float) -> str:
    """SIGTERM to nspawn: it asks systemd inside to power off."""
    if not same_process(record.nspawn_pid, record.nspawn_started):
        return 'not running'
    _kill([record.nspawn_pid], signal.SIGTERM)
    try:
        waiting.wait_for(f'{record.machine} powered off', lambda: not
                         same_process(record.nspawn_pid,
                                      record.nspawn_started) or None,
                         timeout, interval=0.5)
        return 'powered off'
    except waiting.WaitTimeout:
        return f'killed after {timeout:g} s'


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def stop(paths: layout.EnvPaths, *,
         timeout: float = STOP_TIMEOUT) -> list[Row]:
    """Power the container off (killing what does not stop in time) and
    remove what it made: mounts, cgroup directories, nspawn's /run
    entries, the namespace with its links, the overlay.  Converges: a
    second call finds nothing and says so."""
    record = load(paths)
    rows = []
    if record is not None and record.nspawn_pid:
        how = _shutdown(record, paths, timeout)
        rows.append(Row('container', record.machine, results.DELETED
                        if how != 'not running' else results.UNCHANGED, how))
        _reap(record.nspawn_pid)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        pids = _pids_of(record, paths)
        if not pids:
            break
        _kill(pids, sig)
        with contextlib.suppress(waiting.WaitTimeout):
            waiting.wait_for('container processes gone', lambda: not
                             _pids_of(record, paths), 10, interval=0.2)
        if record is not None:
            _reap(record.nspawn_pid)
    left = _pids_of(record, paths)
    if left:
        raise ContainerError(f'processes of {paths.machine} do not die: '
                             f'{left}')
    torn = mounts.teardown(paths.root)
    if torn.unmounted:
        rows.append(Row('mounts', str(paths.root), results.DELETED,
                        f'{len(torn.unmounted)} unmounted'))
    if torn.remaining:
        raise ContainerError(f'still mounted: {", ".join(torn.remaining)}')
    dirs = record.cgroups if record else cgroup_dirs(paths.cgroup_name)
    present = [d for d in dirs if os.path.isdir(d)]
    stuck = remove_cgroups(present)
    if present:
        rows.append(Row('cgroups', paths.cgroup_name, results.DELETED
                        if not stuck else results.FAILED, '; '.join(stuck)))
    for entry in nspawn_run_entries(paths.machine):
        shutil.rmtree(entry, ignore_errors=True)
        rows.append(Row('run-entry', str(entry), results.DELETED))
    if netns.delete(paths.namespace):
        rows.append(Row('namespace', paths.namespace, results.DELETED))
    overlay = paths.root / 'overlay'
    for directory in (overlay, paths.merged):
        if directory.exists():
            mounts.remove_tree(directory)
            rows.append(Row('overlay', str(directory), results.DELETED))
    paths.record.unlink(missing_ok=True)
    if stuck:
        raise ContainerError(f'cgroup directories stay: {"; ".join(stuck)}')
    return rows


def nspawn_run_entries(
        machine: str,
        run_dir: pathlib.Path | None = None) -> list[pathlib.Path]:
    """What systemd-nspawn leaves under /run/systemd/nspawn for a machine
    (/run is no tmpfs here: nothing clears it)."""
    run_dir = run_dir or NSPAWN_RUN
    if not run_dir.is_dir():
        return []
    return sorted(path for path in run_dir.glob(f'*/{machine}*'))


def leftovers(paths: layout.EnvPaths) -> list[str]:
    """What of the container still exists on the host, one line each."""
    record = load(paths)
    found = []
    if netns.exists(paths.namespace):
        found.append(f'namespace {paths.namespace}')
    found += [f'mount {m.path}' for m in mounts.mounts_under(paths.root)]
    dirs = record.cgroups if record else cgroup_dirs(paths.cgroup_name)
    found += [f'cgroup {d}' for d in dirs if os.path.isdir(d)]
    found += [f'process {pid}' for pid in _pids_of(record, paths)]
    found += [f'run entry {p}' for p in nspawn_run_entries(paths.machine)]
    return found
