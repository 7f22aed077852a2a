"""trovestack.cloud.registry without the real docker-registry: a stand-in on
PATH that answers /v2/ on the configured address."""

import os
import pathlib
import socket
import subprocess
import sys
import textwrap

import pytest

from trovestack.cloud import registry

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
    """A registry whose supervisor is gone is not running, and stopping
    it signals nothing else."""
    data_dir = tmp_path / 'reg'
    data_dir.mkdir()
    other = subprocess.Popen(['sleep', '60'])
    try:
        (data_dir / registry.STATE_FILE).write_text(
            '{"host": "127.0.0.1", "port": 1, "netns": null}')
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

