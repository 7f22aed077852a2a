"""Where the compute layer keeps its files, sockets and settings."""

import dataclasses
import hashlib
import ipaddress
import itertools
import pathlib

from trovestack.cloud import processes
from trovestack.common import files

STATE_FILE = 'compute.json'
# Services of ours on host loopback; their ports are picked once.
PORT_NAMES = ('placement', 'neutron', 'cinder', 'ceph-mon', 'radosgw')
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
    def new(cls, base_port: int = 0) -> 'ComputeState':
        return cls(ports=_ports(base_port=base_port))

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

    @property
    def router_address(self) -> str:
        """The users' router's address on the external network (fixed, so
        the namespace's route to the private network needs no lookup)."""
        return str(list(itertools.islice(
            ipaddress.ip_network(self.data_cidr).hosts(), 2))[1])

    def bridges(self) -> list[tuple[str, str, str]]:
        """[(physical network, bridge, the namespace's address/prefix)]."""
        return [(PHYSICAL_NETWORK, MGMT_BRIDGE, _with_prefix(self.mgmt_cidr)),
                (DATA_NETWORK, DATA_BRIDGE, _with_prefix(self.data_cidr))]


def _gateway(cidr: str) -> str:
    return str(next(ipaddress.ip_network(cidr).hosts()))


def _with_prefix(cidr: str) -> str:
    return f'{_gateway(cidr)}/{ipaddress.ip_network(cidr).prefixlen}'


def _ports(existing: dict[str, int] | None = None,
           base_port: int = 0) -> dict[str, int]:
    """The layer's ports by the cloud's one policy (the OSD's a range)."""
    return processes.allocate_ports(
        [*PORT_NAMES, *PORT_RANGES], base_port=base_port, existing=existing,
        counts=PORT_RANGES)


def _add_missing_ports(ports: dict[str, int]) -> None:
    ports.update(_ports(existing=ports))


class ComputePaths:
    """Paths of the compute layer of the cloud in ``cloud_root``.

    Unix sockets live under a short ``/run`` directory (socket paths are
    limited to 107 bytes); everything else under ``<cloud>/compute``.
    """

    def __init__(self, cloud_root: pathlib.Path | str) -> None:
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

    def service_dir(self, name: str) -> pathlib.Path:
        return self.root / name

    def config_dir(self, name: str) -> pathlib.Path:
        return self.root / name / 'etc'

    def socket(self, name: str) -> pathlib.Path:
        return self.run_dir / f'{name}.sock'

    @property
    def state_file(self) -> pathlib.Path:
        return self.root / STATE_FILE

    def load_state(self) -> ComputeState | None:
        state = files.load_record(self.state_file, ComputeState)
        if state is not None:
            # A state written before a service joined the layer.
            _add_missing_ports(state.ports)
        return state

    def save_state(self, state: ComputeState) -> None:
        files.save_record(self.state_file, state)
