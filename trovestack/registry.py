"""A local container registry: Debian's ``docker-registry``, started by hand.

Guests pull datastore images from it (Trove's ``start_container`` pulls
when the image is absent).  One registry per data directory: its config,
pid file, log and filesystem store all live there, so several coexist and
``stop`` only ever signals the process its own pid file names.
"""

import dataclasses
import hashlib
import json
import logging
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

from trovestack.common import errors
from trovestack.common import files

LOG = logging.getLogger(__name__)

REGISTRY_BINARY = 'docker-registry'
CONFIG_FILE = 'config.yml'
PID_FILE = 'registry.pid'
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
    def address(self):
        """host:port, as docker and skopeo name a registry."""
        return join_host_port(self.host, self.port)

    @property
    def url(self):
        return f'http://{self.address}'


@dataclasses.dataclass
class PushedImage:
    """An image pushed to a registry: its reference and manifest digest."""

    reference: str
    digest: str


def join_host_port(host, port):
    return f'[{host}]:{port}' if ':' in host else f'{host}:{port}'


def render_config(store_dir, host, port):
    """The registry's config.yml: a filesystem store bound to host:port."""
    return _CONFIG.format(store=store_dir, addr=join_host_port(host, port))


def _require(binary, package):
    path = shutil.which(binary)
    if path is None:
        raise RegistryError(f'{binary} not found on PATH: install the '
                            f'Debian package {package}')
    return path


def _read_pid(data_dir):
    try:
        return int((data_dir / PID_FILE).read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def _process_alive(pid):
    """True when pid runs and is not a zombie (reaping our own children)."""
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    except ChildProcessError:
        pass
    try:
        stat = pathlib.Path(f'/proc/{pid}/stat').read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    state = stat.rsplit(')', 1)[1].split()[0]
    return state not in ('Z', 'X')


def _owned_pid(data_dir):
    """The pid from data_dir's pid file if that process is our registry
    (its command line names our config file), else None."""
    pid = _read_pid(data_dir)
    if pid is None or not _process_alive(pid):
        return None
    try:
        argv = pathlib.Path(f'/proc/{pid}/cmdline').read_bytes().split(b'\0')
    except (FileNotFoundError, ProcessLookupError):
        return None
    config = str(data_dir / CONFIG_FILE).encode()
    if config in argv and any(arg.endswith(REGISTRY_BINARY.encode())
                              for arg in argv):
        return pid
    return None


def _load_state(data_dir, pid):
    state = json.loads((data_dir / STATE_FILE).read_text())
    return Registry(host=state['host'], port=state['port'],
                    data_dir=data_dir, netns=state.get('netns'), pid=pid)


def is_running(data_dir):
    """True when the registry of data_dir is running."""
    return _owned_pid(pathlib.Path(data_dir).absolute()) is not None


def running(data_dir):
    """The running :class:`Registry` of data_dir, or None."""
    data_dir = pathlib.Path(data_dir).absolute()
    pid = _owned_pid(data_dir)
    if pid is None:
        return None
    return _load_state(data_dir, pid)


def _in_netns(netns, argv):
    return ['ip', 'netns', 'exec', netns, *argv] if netns else list(argv)


def _probe(registry):
    """True when GET /v2/ answers 200 (from inside its namespace)."""
    url = registry.url + '/v2/'
    if registry.netns:
        code = ('import sys, urllib.request\n'
                'urllib.request.urlopen(sys.argv[1], timeout=2)')
        result = subprocess.run(
            _in_netns(registry.netns, [sys.executable, '-c', code, url]),
            capture_output=True, check=False)
        return result.returncode == 0
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _log_tail(data_dir, lines=5):
    try:
        text = (data_dir / LOG_FILE).read_text(errors='replace')
    except FileNotFoundError:
        return ''
    return ' | '.join(text.strip().splitlines()[-lines:])


def wait_ready(registry, timeout=30.0, interval=0.2):
    """Wait until the registry answers; RegistryError when its process
    exits or ``timeout`` seconds pass first."""
    deadline = time.monotonic() + timeout
    while True:
        if _probe(registry):
            return registry
        if registry.pid is not None and not _process_alive(registry.pid):
            raise RegistryError(
                f'docker-registry for {registry.data_dir} exited before it '
                f'answered on {registry.address}: '
                f'{_log_tail(registry.data_dir)}')
        if time.monotonic() >= deadline:
            raise RegistryError(
                f'docker-registry did not answer on {registry.address} '
                f'within {timeout:g} s (log: '
                f'{registry.data_dir / LOG_FILE})')
        time.sleep(interval)


def start(data_dir, host='127.0.0.1', port=5000, *, netns=None,
          timeout=30.0):
    """Start the registry of data_dir (filesystem store in data_dir/store)
    on host:port, inside network namespace ``netns`` when given.

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
    binary = _require(REGISTRY_BINARY, 'docker-registry')
    store = data_dir / STORE_DIR
    store.mkdir(parents=True, exist_ok=True)
    config = data_dir / CONFIG_FILE
    files.write_atomic(config, render_config(store, host, port))
    argv = _in_netns(netns, [binary, 'serve', str(config)])
    with open(data_dir / LOG_FILE, 'ab') as log:
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                   stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    files.write_atomic(data_dir / PID_FILE, f'{process.pid}\n')
    files.write_atomic(data_dir / STATE_FILE, json.dumps(
        {'host': host, 'port': port, 'netns': netns}))
    registry = Registry(host=host, port=port, data_dir=data_dir,
                        netns=netns, pid=process.pid)
    LOG.info('Starting docker-registry on %s (data in %s)',
             registry.address, data_dir)
    try:
        return wait_ready(registry, timeout=timeout)
    except BaseException:
        stop(data_dir)
        raise


def stop(data_dir, timeout=10.0):
    """Stop the registry of data_dir; True when one was running.

    Signals only the process named by data_dir's pid file, and only when
    its command line is that registry's.
    """
    data_dir = pathlib.Path(data_dir).absolute()
    pid = _owned_pid(data_dir)
    if pid is not None:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _process_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _process_alive(pid):
            LOG.warning('docker-registry %d ignored SIGTERM; killing it', pid)
            os.kill(pid, signal.SIGKILL)
            while _process_alive(pid):
                time.sleep(0.05)
    try:
        (data_dir / PID_FILE).unlink()
    except FileNotFoundError:
        pass
    return pid is not None


def image_reference(registry_address, repository, tag):
    return f'{registry_address}/{repository}:{tag}'


def push(archive_path, registry_address, repository, tag, *, netns=None,
         compress=True):
    """Push a docker-archive to registry_address/repository:tag (plain
    HTTP, Docker v2 schema 2 manifest); returns the pushed image.

    With ``compress`` skopeo gzips the layers, as any registry push does.
    Without, the layers go as they are in the archive (uncompressed tar,
    media type ``LAYER_TAR``): a slow puller (an emulated guest) saves
    decompressing them, at the cost of more bytes on the wire.
    """
    archive_path = pathlib.Path(archive_path)
    if not archive_path.is_file():
        raise RegistryError(f'No such image archive: {archive_path}')
    reference = image_reference(registry_address, repository, tag)
    if not compress:
        return _push_tar_layers(archive_path, registry_address, repository,
                                tag, netns)
    skopeo = _require('skopeo', 'skopeo')
    scratch = tempfile.TemporaryDirectory(prefix='trovestack-push-')
    digest_file = pathlib.Path(scratch.name, 'digest')
    # The source is our own local file: no signature policy applies.
    argv = _in_netns(netns, [
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


# Docker's v2 schema 2 media types (distribution's manifest/schema2).
MANIFEST_V2 = 'application/vnd.docker.distribution.manifest.v2+json'
IMAGE_CONFIG = 'application/vnd.docker.container.image.v1+json'
LAYER_TAR = 'application/vnd.docker.image.rootfs.diff.tar'


def _registry_call(method, url, data=None, headers=None, length=None):
    """One registry API request: (status, headers), RegistryError on an
    HTTP error or no answer."""
    request = urllib.request.Request(url, data=data, method=method,
                                     headers=dict(headers or {}))
    if length is not None:
        request.add_header('Content-Length', str(length))
    try:
        with urllib.request.urlopen(request, timeout=300) as response:
            response.read()
            return response.status, response.headers
    except urllib.error.HTTPError as e:
        if method == 'HEAD' and e.code == 404:
            return 404, e.headers
        detail = e.read().decode(errors='replace').strip()[:200]
        raise RegistryError(f'{method} {url}: HTTP {e.code} {detail}') from e
    except (urllib.error.URLError, OSError) as e:
        raise RegistryError(f'{method} {url}: {e}') from e


def _upload_blob(base, repository, digest, fileobj, size):
    """Upload one blob (monolithic), unless the registry has it."""
    blob_url = f'{base}/v2/{repository}/blobs/{digest}'
    if _registry_call('HEAD', blob_url)[0] == 200:
        return
    _, headers = _registry_call('POST', f'{base}/v2/{repository}/blobs/'
                                'uploads/', data=b'')
    location = urllib.parse.urljoin(base + '/', headers['Location'])
    separator = '&' if '?' in location else '?'
    _registry_call('PUT', f'{location}{separator}digest={digest}',
                   data=fileobj, length=size,
                   headers={'Content-Type': 'application/octet-stream'})


def push_tar_layers_here(archive_path, registry_address, repository, tag):
    """Push a docker-archive's uncompressed layers, its config and a
    schema 2 manifest over the registry API, from this network namespace.
    The layer digests are the archive's layer ids (sha256 of each tar,
    which is also its diff id)."""
    base = f'http://{registry_address}'
    try:
        with tarfile.open(archive_path) as tar:
            entry = json.load(tar.extractfile('manifest.json'))[0]
            descriptors = []
            for name in [*entry['Layers'], entry['Config']]:
                member = tar.getmember(name)
                digest = 'sha256:' + name.split('/')[0].removesuffix('.json')
                _upload_blob(base, repository, digest,
                             tar.extractfile(member), member.size)
                descriptors.append({'mediaType': LAYER_TAR,
                                    'size': member.size, 'digest': digest})
    except (tarfile.TarError, KeyError, IndexError, ValueError) as e:
        raise RegistryError(f'{archive_path} is not a docker-archive: '
                            f'{e}') from e
    config = descriptors.pop()
    config['mediaType'] = IMAGE_CONFIG
    manifest = json.dumps({'schemaVersion': 2, 'mediaType': MANIFEST_V2,
                           'config': config, 'layers': descriptors},
                          indent=3).encode()
    _, headers = _registry_call(
        'PUT', f'{base}/v2/{repository}/manifests/{tag}', data=manifest,
        headers={'Content-Type': MANIFEST_V2})
    digest = headers.get('Docker-Content-Digest') or (
        'sha256:' + hashlib.sha256(manifest).hexdigest())
    return PushedImage(
        reference=image_reference(registry_address, repository, tag),
        digest=digest)


def _push_tar_layers(archive_path, registry_address, repository, tag,
                     netns):
    if not netns:
        return push_tar_layers_here(archive_path, registry_address,
                                    repository, tag)
    result = subprocess.run(
        _in_netns(netns, [sys.executable, '-m', 'trovestack.registry',
                          str(archive_path), registry_address, repository,
                          tag]),
        capture_output=True, text=True, check=False)
    if result.returncode != 0:
        lines = result.stderr.strip().splitlines() or ['no output']
        raise RegistryError(f'Could not push {archive_path} to '
                            f'{registry_address}: {lines[-1]}')
    return PushedImage(**json.loads(result.stdout))


def _main(argv):
    """python -m trovestack.registry ARCHIVE ADDRESS REPOSITORY TAG: the
    uncompressed push, run inside a namespace by push()."""
    try:
        pushed = push_tar_layers_here(*argv)
    except RegistryError as e:
        print(e, file=sys.stderr)
        return 1
    print(json.dumps(dataclasses.asdict(pushed)))
    return 0


if __name__ == '__main__':
    sys.exit(_main(sys.argv[1:]))
