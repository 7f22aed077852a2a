"""Datastore images and the local registry against the real parts: Debian's
docker-registry and skopeo."""

import io
import json
import socket
import tarfile
import urllib.request

import pytest

from trovestack import registry
from trovestack.datastore_images import archive

V2S2 = 'application/vnd.docker.distribution.manifest.v2+json'


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def tiny_archive(path):
    """A one-file docker-archive, written by our own writer."""
    layer = path.parent / 'layer.tar'
    with tarfile.open(layer, 'w') as tar:
        data = b'hello\n'
        info = tarfile.TarInfo('hello.txt')
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    config = archive.ImageConfig(entrypoint=['/bin/true'], cmd=[], env={})
    return archive.write_docker_archive(layer, path, 'trovestack/tiny',
                                        '1.0', config)


def get(url, accept=None):
    request = urllib.request.Request(url)
    if accept:
        request.add_header('Accept', accept)
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.headers, json.load(response)


@pytest.mark.skipif(not registry.shutil.which('docker-registry'),
                    reason='Debian package docker-registry not installed')
def test_registry_push_then_read_manifest(tmp_path):
    image_id = tiny_archive(tmp_path / 'tiny.tar')
    data_dir = tmp_path / 'registry'
    reg = registry.start(data_dir, port=free_port())
    try:
        assert registry.start(data_dir).pid == reg.pid
        pushed = registry.push(tmp_path / 'tiny.tar', reg.address,
                               'trovestack/tiny', '1.0')
        assert pushed.reference == f'{reg.address}/trovestack/tiny:1.0'
        headers, manifest = get(
            f'{reg.url}/v2/trovestack/tiny/manifests/1.0', accept=V2S2)
        assert manifest['mediaType'] == V2S2
        assert manifest['config']['digest'] == image_id
        assert headers['Docker-Content-Digest'] == pushed.digest
        _, catalog = get(f'{reg.url}/v2/_catalog')
        assert 'trovestack/tiny' in catalog['repositories']
        _, tags = get(f'{reg.url}/v2/trovestack/tiny/tags/list')
        assert tags['tags'] == ['1.0']
    finally:
        assert registry.stop(data_dir)
    assert not registry.is_running(data_dir)
    # The store survives a restart.
    reg = registry.start(data_dir, port=free_port())
    try:
        _, tags = get(f'{reg.url}/v2/trovestack/tiny/tags/list')
        assert tags['tags'] == ['1.0']
    finally:
        registry.stop(data_dir)
