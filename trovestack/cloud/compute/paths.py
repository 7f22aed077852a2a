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
PORT_NAMES = ('placement', 'neutron', 'cinder')
COMPUTE_HOST = 'trovestack-compute'
PHYSICAL_NETWORK = 'mgmt'
MGMT_BRIDGE = 'br-mgmt'
DEFAULT_MGMT_CIDR = '10.222.0.0/24'


@dataclasses.dataclass
class ComputeState:
    """What a compute layer remembers between runs (compute.json)."""

    ports: dict
    mgmt_cidr: str = DEFAULT_MGMT_CIDR
    bootstrapped: bool = False
    # Services set up after the first bootstrap of an older layer.
    set_up: list = dataclasses.field(default_factory=list)

    @classmethod
    def new(cls, base_port=0):
        if base_port:
            ports = {name: base_port + i for i, name in enumerate(PORT_NAMES)}
        else:
            ports = {name: processes.free_port() for name in PORT_NAMES}
        return cls(ports=ports)

    @property
    def gateway(self) -> str:
        """The management network's gateway: an address in the namespace."""
        return str(next(ipaddress.ip_network(self.mgmt_cidr).hosts()))

    @property
    def gateway_cidr(self) -> str:
        prefix = ipaddress.ip_network(self.mgmt_cidr).prefixlen
        return f'{self.gateway}/{prefix}'


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
        for name in PORT_NAMES:
            # A state written before a service joined the layer.
            state.ports.setdefault(name, processes.free_port())
        return state

    def save_state(self, state):
        layout_mod.write_private(self.state_file, json.dumps(
            dataclasses.asdict(state), indent=2, sort_keys=True))
