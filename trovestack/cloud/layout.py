"""Where the local control plane keeps its files, and which ports it uses."""

import dataclasses
import os
import pathlib
import secrets
from collections.abc import Iterable

from trovestack.cloud import processes
from trovestack.common import files

DEFAULT_BASE_PORT = 25000
HOST = '127.0.0.1'
STATE_FILE = 'cloud.json'


def default_state_dir() -> pathlib.Path:
    """$TROVESTACK_STATE_DIR, else $XDG_STATE_HOME/trovestack/cloud."""
    explicit = os.environ.get('TROVESTACK_STATE_DIR')
    if explicit:
        return pathlib.Path(explicit)
    return files.state_dir('trovestack', 'cloud')


def default_clouds_yaml() -> pathlib.Path:
    """The per-user clouds.yaml that every OpenStack client reads."""
    return files.config_dir('openstack', 'clouds.yaml')


def write_private(path: pathlib.Path | str, text: str) -> pathlib.Path:
    """Write a file only its owner can read (it may hold passwords)."""
    return files.write_atomic(path, text, mode=0o600)


@dataclasses.dataclass
class CloudState:
    """What a bootstrapped cloud remembers between runs (cloud.json)."""

    ports: dict
    admin_password: str
    demo_password: str
    service_password: str
    clouds_yaml: str
    bootstrapped: bool = False
    base_port: int = 0
    registry: bool = False
    # Horizon with trove-dashboard (trovestack.cloud.dashboard).
    dashboard: bool = False
    # The Trove source tree the cloud runs (trovestack.cloud.trove_source);
    # None: the trove release installed in the venv.
    trove_source: str | None = None
    # The key of the tree's environment under <state>/trove-env
    # (trovestack.cloud.trove_env); None with the release.
    trove_env: str | None = None
    # What Trove's services run since their last start by trovestack:
    # 'release:<version>' or '<env key>:<digest of the tree's code>'.
    trove_started: str | None = None
    # The digest of Trove's database code whose db_sync ran last.
    trove_migrations: str | None = None

    @classmethod
    def new(cls, base_port: int, clouds_yaml: pathlib.Path | str,
            port_names: Iterable[str]) -> 'CloudState':
        ports = processes.allocate_ports(port_names, base_port=base_port,
                                         host=HOST, fallback=False)
        return cls(ports=ports, admin_password=secrets.token_urlsafe(18),
                   demo_password=secrets.token_urlsafe(18),
                   service_password=secrets.token_urlsafe(18),
                   clouds_yaml=str(clouds_yaml), base_port=base_port)

    def add_ports(self, port_names: Iterable[str]) -> None:
        """Give a port to each name that has none yet (an older cloud, or
        the registry turned on): base_port + its index when that is free,
        else any free port."""
        self.ports.update(processes.allocate_ports(
            port_names, base_port=self.base_port, existing=self.ports,
            host=HOST))


class Layout:
    """The paths under one state directory."""

    def __init__(self, state_dir: pathlib.Path | str) -> None:
        self.root = pathlib.Path(state_dir).absolute()

    def service_dir(self, service: str) -> pathlib.Path:
        return self.root / service

    def config_dir(self, service: str) -> pathlib.Path:
        return self.root / service / 'etc'

    def log_file(self, service: str) -> pathlib.Path:
        return self.root / 'logs' / f'{service}.log'

    def pid_file(self, service: str) -> pathlib.Path:
        return self.root / 'run' / f'{service}.pid'

    @property
    def state_file(self) -> pathlib.Path:
        return self.root / STATE_FILE

    @property
    def clouds_yaml(self) -> pathlib.Path:
        return self.root / 'clouds.yaml'

    def make_dirs(self, services: Iterable[str]) -> None:
        """The directories of the given services (names), logs and pids."""
        for sub in ('logs', 'run', *services):
            (self.root / sub).mkdir(mode=0o700, parents=True, exist_ok=True)

    def load_state(self) -> CloudState | None:
        return files.load_record(self.state_file, CloudState)

    def save_state(self, state: CloudState) -> None:
        files.save_record(self.state_file, state)
