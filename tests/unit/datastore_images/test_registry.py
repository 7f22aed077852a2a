"""trovestack.registry without the real docker-registry: a stand-in on
PATH that answers /v2/ on the configured address."""

import hashlib
import http.server
import io
import json
import os
import pathlib
import socket
import subprocess
import sys
import tarfile
import textwrap
import threading
import urllib.parse

import pytest

from trovestack import registry

FAKE_REGISTRY = textwrap.dedent('''\
    #!{python}
    import http.server, re, sys
    config = open(sys.argv[2]).read()
    host, port = re.search(r'addr: (.+):(\\d+)', config).groups()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if self.path == '/v2/' else 404)
            self.end_headers()
            self.wfile.write(b'{{}}')

    http.server.HTTPServer((host, int(port)), Handler).serve_forever()
    ''')


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@pytest.fixture
def fake_registry(tmp_path, monkeypatch):
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    script = bin_dir / 'docker-registry'
    script.write_text(FAKE_REGISTRY.format(python=sys.executable))
    script.chmod(0o755)
    monkeypatch.setenv('PATH', f'{bin_dir}{os.pathsep}{os.environ["PATH"]}')
    return script


def test_address_brackets_ipv6():
    assert registry.join_host_port('127.0.0.1', 5000) == '127.0.0.1:5000'
    assert registry.join_host_port('::1', 5000) == '[::1]:5000'


def test_config_names_store_and_address(tmp_path):
    text = registry.render_config(tmp_path / 'store', '10.0.0.1', 5001)
    assert f'rootdirectory: {tmp_path / "store"}' in text
    assert 'addr: 10.0.0.1:5001' in text


def test_start_is_idempotent_and_stop_stops(tmp_path, fake_registry):
    data_dir = tmp_path / 'reg'
    port = free_port()
    first = registry.start(data_dir, port=port, timeout=20)
    try:
        assert first.address == f'127.0.0.1:{port}'
        assert registry.is_running(data_dir)
        again = registry.start(data_dir, port=port + 1, timeout=20)
        assert (again.pid, again.port) == (first.pid, port)
    finally:
        assert registry.stop(data_dir) is True
    assert not registry.is_running(data_dir)
    assert registry.stop(data_dir) is False


def test_stop_never_signals_a_foreign_pid(tmp_path):
    data_dir = tmp_path / 'reg'
    data_dir.mkdir()
    other = subprocess.Popen(['sleep', '60'])
    try:
        (data_dir / registry.PID_FILE).write_text(f'{other.pid}\n')
        assert registry.is_running(data_dir) is False
        assert registry.stop(data_dir) is False
        assert other.poll() is None
    finally:
        other.kill()
        other.wait()


def test_start_reports_an_early_exit_with_the_log(tmp_path, monkeypatch):
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    script = bin_dir / 'docker-registry'
    script.write_text('#!/bin/sh\necho "listen tcp: address in use"\n'
                      'exit 1\n')
    script.chmod(0o755)
    monkeypatch.setenv('PATH', f'{bin_dir}{os.pathsep}{os.environ["PATH"]}')
    with pytest.raises(registry.RegistryError, match='address in use'):
        registry.start(tmp_path / 'reg', port=free_port(), timeout=20)


def test_start_without_the_package_names_it(tmp_path, monkeypatch):
    monkeypatch.setattr(registry.shutil, 'which', lambda name: None)
    with pytest.raises(registry.RegistryError,
                       match='Debian package docker-registry'):
        registry.start(tmp_path / 'reg')


def test_push_missing_archive(tmp_path, monkeypatch):
    monkeypatch.setattr(registry.shutil, 'which', lambda name: '/x/skopeo')
    with pytest.raises(registry.RegistryError, match='No such image'):
        registry.push(tmp_path / 'nope.tar', '127.0.0.1:5000', 'a/b', '1')


def test_push_runs_skopeo_insecure_v2s2(tmp_path, monkeypatch):
    archive = tmp_path / 'image.tar'
    archive.write_bytes(b'')
    monkeypatch.setattr(registry.shutil, 'which', lambda name: '/x/skopeo')
    calls = []

    def fake_run(argv, **kwargs):
        calls.append(argv)
        digest_file = argv[argv.index('--digestfile') + 1]
        pathlib.Path(digest_file).write_text('sha256:abc\n')
        return subprocess.CompletedProcess(argv, 0, '', '')

    monkeypatch.setattr(registry.subprocess, 'run', fake_run)
    pushed = registry.push(archive, '127.0.0.1:5000', 'trovestack/mariadb',
                           '11.8', netns='ns1')
    assert pushed == registry.PushedImage(
        '127.0.0.1:5000/trovestack/mariadb:11.8', 'sha256:abc')
    argv = calls[0]
    assert argv[:4] == ['ip', 'netns', 'exec', 'ns1']
    assert '--dest-tls-verify=false' in argv
    assert argv[argv.index('--format') + 1] == 'v2s2'
    assert argv[-2:] == [f'docker-archive:{archive}',
                         'docker://127.0.0.1:5000/trovestack/mariadb:11.8']


def test_push_failure_is_one_line(tmp_path, monkeypatch):
    archive = tmp_path / 'image.tar'
    archive.write_bytes(b'')
    monkeypatch.setattr(registry.shutil, 'which', lambda name: '/x/skopeo')
    monkeypatch.setattr(
        registry.subprocess, 'run',
        lambda argv, **kw: subprocess.CompletedProcess(
            argv, 1, '', 'time="x" level=fatal\nconnection refused\n'))
    with pytest.raises(registry.RegistryError) as info:
        registry.push(archive, '127.0.0.1:1', 'a/b', '1')
    assert str(info.value).endswith('connection refused')


class _StandInRegistry(http.server.BaseHTTPRequestHandler):
    """Just enough of the registry API for a monolithic push."""

    blobs = {}
    manifests = {}

    def log_message(self, *args):
        pass

    def _reply(self, code, headers=()):
        self.send_response(code)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header('Content-Length', '0')
        self.end_headers()

    def do_HEAD(self):
        digest = self.path.rsplit('/', 1)[1]
        self._reply(200 if digest in self.blobs else 404)

    def do_POST(self):
        self._reply(202, [('Location', '/v2/uploads/u1?_state=x')])

    def do_PUT(self):
        body = self.rfile.read(int(self.headers['Content-Length']))
        url = urllib.parse.urlsplit(self.path)
        if '/manifests/' in url.path:
            self.manifests[url.path] = (self.headers['Content-Type'], body)
            self._reply(201, [('Docker-Content-Digest', 'sha256:m')])
            return
        digest = urllib.parse.parse_qs(url.query)['digest'][0]
        assert digest == 'sha256:' + hashlib.sha256(body).hexdigest()
        self.blobs[digest] = body
        self._reply(201)


@pytest.fixture
def stand_in_registry():
    _StandInRegistry.blobs = {}
    _StandInRegistry.manifests = {}
    server = http.server.HTTPServer(('127.0.0.1', 0), _StandInRegistry)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f'127.0.0.1:{server.server_address[1]}'
    server.shutdown()
    server.server_close()


def test_push_uncompressed_sends_the_archive_layers_as_they_are(
        tmp_path, monkeypatch, stand_in_registry):
    from trovestack.datastore_images import archive as docker_archive

    monkeypatch.setattr(registry.shutil, 'which',
                        lambda name: pytest.fail('skopeo used'))
    layer = tmp_path / 'layer.tar'
    with tarfile.open(layer, 'w') as tar:
        info = tarfile.TarInfo('hello.txt')
        info.size = 6
        tar.addfile(info, io.BytesIO(b'hello\n'))
    image_id = docker_archive.write_docker_archive(
        [layer], tmp_path / 'image.tar', 'trovestack/tiny', '1',
        docker_archive.ImageConfig(entrypoint=['/bin/true'], cmd=[], env={}))
    pushed = registry.push(tmp_path / 'image.tar', stand_in_registry,
                           'trovestack/tiny', '1', compress=False)
    assert pushed == registry.PushedImage(
        f'{stand_in_registry}/trovestack/tiny:1', 'sha256:m')
    media_type, body = _StandInRegistry.manifests[
        '/v2/trovestack/tiny/manifests/1']
    assert media_type == registry.MANIFEST_V2
    manifest = json.loads(body)
    layer_sha = 'sha256:' + hashlib.sha256(layer.read_bytes()).hexdigest()
    assert manifest['layers'] == [{'mediaType': registry.LAYER_TAR,
                                   'size': layer.stat().st_size,
                                   'digest': layer_sha}]
    assert manifest['config']['digest'] == image_id
    assert manifest['config']['mediaType'] == registry.IMAGE_CONFIG
    assert _StandInRegistry.blobs[layer_sha] == layer.read_bytes()
    # A blob the registry has is not sent again.
    _StandInRegistry.blobs[layer_sha] = b'kept'
    registry.push(tmp_path / 'image.tar', stand_in_registry,
                  'trovestack/tiny', '1', compress=False)
    assert _StandInRegistry.blobs[layer_sha] == b'kept'


def test_push_uncompressed_bad_archive_is_one_line(tmp_path,
                                                   stand_in_registry):
    tiny = tmp_path / 'image.tar'
    with tarfile.open(tiny, 'w') as tar:
        data = json.dumps([{'Config': 'c.json', 'Layers': []}]).encode()
        info = tarfile.TarInfo('manifest.json')
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    with pytest.raises(registry.RegistryError,
                       match="not a docker-archive: .*'c.json'"):
        registry.push(tiny, stand_in_registry, 'a/b', '1', compress=False)
