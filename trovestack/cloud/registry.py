"""A local container registry: Debian's ``docker-registry``, started by hand.

Guests pull datastore images from it (Trove's ``start_container`` pulls
when the image is absent).  One registry per data directory: its config,
log and filesystem store all live there, so several coexist; it runs under
a supervisor (the local cloud's, or one of its own in the data directory).
"""

import dataclasses
import json
import logging
import pathlib
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from typing import Any

from trovestack.cloud import supervision
from trovestack.common import errors
from trovestack.common import files
from trovestack.common import netns as netns_mod

LOG = logging.getLogger(__name__)

REGISTRY_BINARY = 'docker-registry'
CONFIG_FILE = 'config.yml'
STATE_FILE = 'registry.json'
LOG_FILE = 'registry.log'
STORE_DIR = 'store'

_CONFIG = """\
version: 0.1
log:
  level: info
  fields:
    service: registry
storage:
  filesystem:
    rootdirectory: {store}
  delete:
    enabled: true
http:
  addr: {addr}
  headers:
    X-Content-Type-Options: [nosniff]
health:
  storagedriver:
    enabled: true
    interval: 10s
    threshold: 3
"""


class RegistryError(errors.UserError):
    """The registry could not be started, reached or pushed to."""


@dataclasses.dataclass
class Registry:
    """A running registry: where it listens and where it keeps its data."""

    host: str
    port: int
    data_dir: pathlib.Path
    netns: str | None = None
    pid: int | None = None

    @property
    def address(self) -> str:
        """host:port, as docker and skopeo name a registry."""
        return join_host_port(self.host, self.port)

    @property
    def url(self) -> str:
        return f'http://{self.address}'


@dataclasses.dataclass
class PushedImage:
    """An image pushed to a registry: its reference and manifest digest."""

    reference: str
    digest: str


def join_host_port(host: str, port: int) -> str:
    return f'[{host}]:{port}' if ':' in host else f'{host}:{port}'


def render_config(store_dir: pathlib.Path | str, host: str, port: int) -> str:
    """The registry's config.yml: a filesystem store bound to host:port."""
    return _CONFIG.format(store=store_dir, addr=join_host_port(host, port))


def _require(binary: str, package: str) -> str:
    path = shutil.which(binary)
    if path is None:
        raise RegistryError(f'{binary} not found on PATH: install the '
                            f'Debian package {package}')
    return path


PROGRAM = 'registry'


def _supervisor(
        data_dir: pathlib.Path,
        supervisor_root: pathlib.Path | str | None = None,
) -> supervision.Supervisor:
    return supervision.for_record(supervisor_root, data_dir, data_dir)


def _load_state(data_dir: pathlib.Path) -> dict[str, Any] | None:
    try:
        return files.load_record(data_dir / STATE_FILE, dict)
    except ValueError:
        return None


def is_running(data_dir: pathlib.Path | str) -> bool:
    """True when the registry of data_dir is running."""
    return running(data_dir) is not None


def running(data_dir: pathlib.Path | str) -> Registry | None:
    """The running :class:`Registry` of data_dir, or None."""
    data_dir = pathlib.Path(data_dir).absolute()
    state = _load_state(data_dir)
    if state is None:
        return None
    pid = _supervisor(data_dir, state.get('supervisor')).pid(PROGRAM)
    if pid is None:
        return None
    return Registry(host=state['host'], port=state['port'],
                    data_dir=data_dir, netns=state.get('netns'), pid=pid)


def _probe(registry: Registry) -> bool:
    """True when GET /v2/ answers 200 (from inside its namespace)."""
    url = registry.url + '/v2/'
    if registry.netns:
        code = ('import sys, urllib.request\n'
                'urllib.request.urlopen(sys.argv[1], timeout=2)')
        result = subprocess.run(
            netns_mod.inside(registry.netns,
                             [sys.executable, '-c', code, url]),
            capture_output=True, check=False)
        return result.returncode == 0
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def program(
        data_dir: pathlib.Path | str, host: str = '127.0.0.1',
        port: int = 5000, *, netns: str | None = None,
        supervisor_root: pathlib.Path | str | None = None,
) -> supervision.Program:
    """The registry of data_dir declared as a supervised program (its
    config and state written): for a supervisor of the caller's
    (``supervisor_root``, the cloud's) or its own (None)."""
    data_dir = pathlib.Path(data_dir).absolute()
    binary = _require(REGISTRY_BINARY, 'docker-registry')
    store = data_dir / STORE_DIR
    store.mkdir(parents=True, exist_ok=True)
    config = data_dir / CONFIG_FILE
    files.write_atomic(config, render_config(store, host, port))
    files.save_record(data_dir / STATE_FILE, {
        'host': host, 'port': port, 'netns': netns,
        'supervisor': str(supervisor_root) if supervisor_root else None})
    registry = Registry(host=host, port=port, data_dir=data_dir,
                        netns=netns)
    return supervision.Program(
        PROGRAM, [binary, 'serve', str(config)], netns,
        lambda: _probe(registry), log=str(data_dir / LOG_FILE))


def start(data_dir: pathlib.Path | str, host: str = '127.0.0.1',
          port: int = 5000, *, netns: str | None = None,
          timeout: float = 30.0) -> Registry:
    """Start the registry of data_dir (filesystem store in data_dir/store)
    on host:port, inside network namespace ``netns`` when given, under a
    supervisor of its own in data_dir.

    Idempotent: when the registry of data_dir already runs, returns it
    as it is (its own address).
    """
    data_dir = pathlib.Path(data_dir).absolute()
    current = running(data_dir)
    if current is not None:
        if (current.host, current.port, current.netns) != (host, port,
                                                           netns):
            LOG.warning('Registry of %s already runs on %s (netns %s); '
                        'keeping it', data_dir, current.address,
                        current.netns)
        return current
    declared = program(data_dir, host, port, netns=netns)
    supervisor = _supervisor(data_dir)
    LOG.info('Starting docker-registry on %s (data in %s)',
             join_host_port(host, port), data_dir)
    try:
        pid = supervisor.start(declared, timeout)
    except supervision.SupervisionError as exc:
        stop(data_dir)
        raise RegistryError(f'docker-registry for {data_dir}: {exc}') \
            from None
    except BaseException:
        stop(data_dir)
        raise
    return Registry(host=host, port=port, data_dir=data_dir, netns=netns,
                    pid=pid)


def stop(data_dir: pathlib.Path | str, timeout: float = 10.0) -> bool:
    """Stop the registry of data_dir; True when one was running (and the
    supervisor of its own, when it has one)."""
    data_dir = pathlib.Path(data_dir).absolute()
    state = _load_state(data_dir) or {}
    supervisor = _supervisor(data_dir, state.get('supervisor'))
    was_running = supervisor.stop(PROGRAM)
    if not state.get('supervisor'):
        supervisor.shutdown()
    return was_running


def image_reference(registry_address: str, repository: str, tag: str) -> str:
    return f'{registry_address}/{repository}:{tag}'


def push(archive_path: pathlib.Path | str, registry_address: str,
         repository: str, tag: str, *,
         netns: str | None = None) -> PushedImage:
    """Push a docker-archive to registry_address/repository:tag with skopeo
    (plain HTTP, Docker v2 schema 2 manifest, gzipped layers as any
    registry push); returns the pushed image."""
    archive_path = pathlib.Path(archive_path)
    if not archive_path.is_file():
        raise RegistryError(f'No such image archive: {archive_path}')
    reference = image_reference(registry_address, repository, tag)
    skopeo = _require('skopeo', 'skopeo')
    scratch = tempfile.TemporaryDirectory(prefix='trovestack-push-')
    digest_file = pathlib.Path(scratch.name, 'digest')
    # The source is our own local file: no signature policy applies.
    argv = netns_mod.inside(netns, [
        skopeo, '--insecure-policy', 'copy', '--quiet',
        '--dest-tls-verify=false', '--format', 'v2s2',
        '--digestfile', str(digest_file),
        f'docker-archive:{archive_path}', f'docker://{reference}'])
    LOG.info('Pushing %s to %s', archive_path, reference)
    try:
        result = subprocess.run(argv, capture_output=True, text=True,
                                check=False)
        if result.returncode != 0:
            lines = result.stderr.strip().splitlines() or ['no output']
            raise RegistryError(f'skopeo could not push {archive_path} to '
                                f'{reference}: {lines[-1]}')
        digest = digest_file.read_text().strip()
    finally:
        scratch.cleanup()
    return PushedImage(reference=reference, digest=digest)



MANIFEST_V2S2 = 'application/vnd.docker.distribution.manifest.v2+json'


def config_digest(registry_address: str, repository: str, tag: str,
                  timeout: float = 10.0) -> str | None:
    """The config digest (the image id) of repository:tag in the registry
    at registry_address (plain HTTP), or None when it holds no such
    image."""
    request = urllib.request.Request(
        f'http://{registry_address}/v2/{repository}/manifests/{tag}',
        headers={'Accept': MANIFEST_V2S2})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            manifest = json.load(answer)
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise RegistryError(f'the registry at {registry_address} answered '
                            f'{exc.code} for {repository}:{tag}') from None
    except (OSError, ValueError) as exc:
        raise RegistryError(f'the registry at {registry_address} could not '
                            f'be asked for {repository}:{tag}: {exc}') \
            from None
    return (manifest.get('config') or {}).get('digest')
