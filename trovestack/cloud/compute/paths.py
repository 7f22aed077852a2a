"""Where the compute layer keeps its files, sockets and settings."""

import dataclasses
import hashlib
import ipaddress
import json
import pathlib

from trovestack.cloud import layout as layout_mod
from trovestack.cloud import processes

STATE_FILE = 'compute.json'
# Services of ours on host loopback; their ports are picked once.
PORT_NAMES = ('placement', 'neutron', 'cinder', 'ceph-mon')
# Services that bind a range of ports: {name: how many}, first port kept
# (Ceph's OSD: public, cluster and two heartbeat messengers, with room).
PORT_RANGES = {'ceph-osd': 8}
COMPUTE_HOST = 'trovestack-compute'
PHYSICAL_NETWORK = 'mgmt'
MGMT_BRIDGE = 'br-mgmt'
DEFAULT_MGMT_CIDR = '10.222.0.0/24'
# A second flat physical network, for the external network ("public",
# floating IPs) whose upstream gateway the namespace holds: tests there
# reach databases on their floating IPs, as a devstack host does.
DATA_NETWORK = 'data'
DATA_BRIDGE = 'br-data'
DEFAULT_DATA_CIDR = '10.223.0.0/24'
# The users' tenant network behind the router (devstack's "private").
DEFAULT_PRIVATE_CIDR = '10.224.0.0/24'


@dataclasses.dataclass
class ComputeState:
    """What a compute layer remembers between runs (compute.json)."""

    ports: dict
    mgmt_cidr: str = DEFAULT_MGMT_CIDR
    data_cidr: str = DEFAULT_DATA_CIDR
    private_cidr: str = DEFAULT_PRIVATE_CIDR
    bootstrapped: bool = False
    # Services set up after the first bootstrap of an older layer.
    set_up: list = dataclasses.field(default_factory=list)

    @classmethod
    def new(cls, base_port=0):
        if base_port:
            ports = {name: base_port + i for i, name in enumerate(PORT_NAMES)}
            ports['ceph-osd'] = base_port + len(PORT_NAMES)
        else:
            ports = {name: processes.free_port() for name in PORT_NAMES}
        _add_missing_ports(ports)
        return cls(ports=ports)

    @property
    def gateway(self) -> str:
        """The management network's gateway: an address in the namespace."""
        return _gateway(self.mgmt_cidr)

    @property
    def data_gateway(self) -> str:
        """The external network's gateway: an address in the namespace."""
        return _gateway(self.data_cidr)

    @property
    def private_gateway(self) -> str:
        """The private network's gateway: the router's interface."""
        return _gateway(self.private_cidr)

    def bridges(self) -> list[tuple[str, str, str]]:
        """[(physical network, bridge, the namespace's address/prefix)]."""
        return [(PHYSICAL_NETWORK, MGMT_BRIDGE, _with_prefix(self.mgmt_cidr)),
                (DATA_NETWORK, DATA_BRIDGE, _with_prefix(self.data_cidr))]


def _gateway(cidr) -> str:
    return str(next(ipaddress.ip_network(cidr).hosts()))


def _with_prefix(cidr) -> str:
    return f'{_gateway(cidr)}/{ipaddress.ip_network(cidr).prefixlen}'


def _add_missing_ports(ports):
    for name in PORT_NAMES:
        ports.setdefault(name, processes.free_port())
    for name, count in PORT_RANGES.items():
        if name not in ports:
            ports[name] = _free_range(count)


def _free_range(count):
    """The first of ``count`` consecutive free loopback ports."""
    for _ in range(100):
        first = processes.free_port()
        if first + count <= 65535 and all(
                processes.port_is_free(port)
                for port in range(first, first + count)):
            return first
    raise LookupError(f'no {count} consecutive free ports on loopback')


class ComputePaths:
    """Paths of the compute layer of the cloud in ``cloud_root``.

    Unix sockets live under a short ``/run`` directory (socket paths are
    limited to 107 bytes); everything else under ``<cloud>/compute``.
    """

    def __init__(self, cloud_root):
        self.cloud_root = pathlib.Path(cloud_root).absolute()
        digest = hashlib.sha256(str(self.cloud_root).encode()).hexdigest()
        self.namespace = f'trovestack-{digest[:8]}'
        self.root = self.cloud_root / 'compute'
        self.run_dir = pathlib.Path('/run') / self.namespace
        self.log_dir = self.cloud_root / 'logs'
        self.pid_dir = self.root / 'run'
        # qemu runs as libvirt-qemu, which cannot enter a private state
        # directory (or /root): guests' disks live in a world-traversable
        # directory of their own.
        self.instances_dir = (pathlib.Path('/var/lib/trovestack')
                              / self.namespace / 'instances')

    def service_dir(self, name):
        return self.root / name

    def config_dir(self, name):
        return self.root / name / 'etc'

    def socket(self, name):
        return self.run_dir / f'{name}.sock'

    @property
    def state_file(self):
        return self.root / STATE_FILE

    def load_state(self):
        if not self.state_file.exists():
            return None
        state = ComputeState(**json.loads(self.state_file.read_text()))
        # A state written before a service joined the layer.
        _add_missing_ports(state.ports)
        return state

    def save_state(self, state):
        layout_mod.write_private(self.state_file, json.dumps(
            dataclasses.asdict(state), indent=2, sort_keys=True))
