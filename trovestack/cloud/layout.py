"""Where the local control plane keeps its files, and which ports it uses."""

import dataclasses
import json
import os
import pathlib
import secrets
import socket

SERVICES = ('keystone', 'glance', 'nova', 'trove')
DEFAULT_BASE_PORT = 25000
HOST = '127.0.0.1'
STATE_FILE = 'cloud.json'


def default_state_dir():
    """$TROVESTACK_STATE_DIR, else $XDG_STATE_HOME/trovestack/cloud."""
    explicit = os.environ.get('TROVESTACK_STATE_DIR')
    if explicit:
        return pathlib.Path(explicit)
    xdg = os.environ.get('XDG_STATE_HOME') or os.path.expanduser(
        '~/.local/state')
    return pathlib.Path(xdg) / 'trovestack' / 'cloud'


def default_clouds_yaml():
    """The per-user clouds.yaml that every OpenStack client reads."""
    xdg = os.environ.get('XDG_CONFIG_HOME') or os.path.expanduser('~/.config')
    return pathlib.Path(xdg) / 'openstack' / 'clouds.yaml'


def free_port():
    """A TCP port on the loopback address that nobody listens on now."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def port_is_free(port):
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
        return True


@dataclasses.dataclass
class CloudState:
    """What a bootstrapped cloud remembers between runs (cloud.json)."""

    ports: dict
    admin_password: str
    demo_password: str
    service_password: str
    clouds_yaml: str
    bootstrapped: bool = False

    @classmethod
    def new(cls, base_port, clouds_yaml):
        if base_port:
            ports = {name: base_port + i for i, name in enumerate(SERVICES)}
        else:
            ports = {name: free_port() for name in SERVICES}
        return cls(ports=ports,
                   admin_password=secrets.token_urlsafe(18),
                   demo_password=secrets.token_urlsafe(18),
                   service_password=secrets.token_urlsafe(18),
                   clouds_yaml=str(clouds_yaml))


class Layout:
    """The paths under one state directory."""

    def __init__(self, state_dir):
        self.root = pathlib.Path(state_dir).absolute()

    def service_dir(self, service):
        return self.root / service

    def config_dir(self, service):
        return self.root / service / 'etc'

    def log_file(self, service):
        return self.root / 'logs' / f'{service}.log'

    def pid_file(self, service):
        return self.root / 'run' / f'{service}.pid'

    @property
    def state_file(self):
        return self.root / STATE_FILE

    @property
    def clouds_yaml(self):
        return self.root / 'clouds.yaml'

    def make_dirs(self):
        for sub in ('logs', 'run', *SERVICES):
            (self.root / sub).mkdir(mode=0o700, parents=True, exist_ok=True)
        for service in SERVICES:
            self.config_dir(service).mkdir(mode=0o700, exist_ok=True)

    def load_state(self):
        if not self.state_file.exists():
            return None
        return CloudState(**json.loads(self.state_file.read_text()))

    def save_state(self, state):
        write_private(self.state_file, json.dumps(
            dataclasses.asdict(state), indent=2, sort_keys=True))


def write_private(path, text):
    """Write a file only its owner can read (it may hold passwords)."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, 'w') as handle:
        handle.write(text)
    os.chmod(path, 0o600)
