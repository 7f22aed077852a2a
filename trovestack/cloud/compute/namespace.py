"""The cloud's network namespace and the forwarder into it."""

import pathlib
import sys
from collections.abc import Iterable

from trovestack.cloud import supervision
from trovestack.cloud.compute import daemons
from trovestack.cloud.compute import paths as paths_mod
from trovestack.common import netns

SYSCTLS = (
    # Without these the namespace's kernel answers ARP for the gateway with
    # the guest tap's MAC and OVN's conntrack ACLs drop the guest's TCP.
    'net.ipv4.conf.all.arp_ignore=1',
    'net.ipv4.conf.default.arp_ignore=1',
    # Guests resolve names against the gateway, where nothing serves DNS:
    # the port-unreachable answer is their resolver's prompt "no".  Rate
    # limited (1 s per guest, the kernel's default) it was dropped while a
    # guest's NTP client kept asking for its pool, and MariaDB's reverse
    # lookup of each client waited out two 5 s resolver timeouts before
    # its greeting (clients saw a 10 s connect).
    'net.ipv4.icmp_ratelimit=0',
)
FORWARDER = 'forwarder'


def ensure(paths: paths_mod.ComputePaths) -> None:
    """Create the namespace (loopback up, sysctls) unless it exists."""
    if not netns.exists(paths.namespace):
        netns.create(paths.namespace)
    daemons.run(['sysctl', '-q', '-w', *SYSCTLS], netns=paths.namespace)
    paths.run_dir.mkdir(mode=0o700, parents=True, exist_ok=True)


def remove(paths: paths_mod.ComputePaths) -> bool:
    """Stop everything inside the namespace and delete it (its bridges,
    taps and addresses go with it)."""
    removed = netns.delete(paths.namespace)
    if paths.run_dir.exists():
        for item in paths.run_dir.iterdir():
            item.unlink(missing_ok=True)
        paths.run_dir.rmdir()
    return removed


def forwarder(paths: paths_mod.ComputePaths,
              rules: Iterable[tuple[str, int, int]]) -> supervision.Program:
    """The forwarder daemon; rules: [(listen_host, port, target_port)]."""
    args = [f'{host}:{port}={target}' for host, port, target in rules]
    log = paths.log_dir / f'{FORWARDER}.log'
    return supervision.Program(
        FORWARDER,
        [sys.executable, '-m', 'trovestack.cloud.compute.forwarder',
         paths.namespace, *args],
        None, lambda: 'forwarding' in _read(log))


def _read(path: pathlib.Path) -> str:
    try:
        return path.read_text(errors='replace')
    except OSError:
        return ''
