"""Unit tests of load_image.images: file checks (real files) and the
upload loop (stub Glance)."""

import hashlib
import shutil
import subprocess
from unittest import mock

import pytest

from load_image import images

QEMU_IMG = shutil.which('qemu-img')
needs_qemu_img = pytest.mark.skipif(QEMU_IMG is None,
                                    reason='qemu-img is not installed')


def _qemu_img(*args):
    subprocess.run([QEMU_IMG, *map(str, args)], check=True,
                   capture_output=True)


@pytest.fixture
def raw_file(tmp_path):
    path = tmp_path / 'guest.img'
    path.write_bytes(b'\0' * 512 + b'guest' * 1000)
    return path


@pytest.fixture
def qcow2_file(tmp_path):
    if QEMU_IMG is None:
        pytest.skip('qemu-img is not installed')
    path = tmp_path / 'guest.qcow2'
    _qemu_img('create', '-f', 'qcow2', path, '16M')
    return path


class TestInspectFile:

    def test_raw(self, raw_file):
        path, size, fmt, virtual = images.inspect_file(raw_file)
        assert (path, size, fmt, virtual) == (
            raw_file, raw_file.stat().st_size, 'raw', raw_file.stat().st_size)

    def test_qcow2(self, qcow2_file):
        _, _, fmt, virtual = images.inspect_file(qcow2_file, 'qcow2')
        assert (fmt, virtual) == ('qcow2', 16 * 1024 * 1024)

    def test_missing(self, tmp_path):
        with pytest.raises(images.ImageFileError, match='does not exist'):
            images.inspect_file(tmp_path / 'nope.qcow2')

    def test_directory(self, tmp_path):
        with pytest.raises(images.ImageFileError, match='not a regular file'):
            images.inspect_file(tmp_path)

    def test_empty(self, tmp_path):
        path = tmp_path / 'empty.qcow2'
        path.touch()
        with pytest.raises(images.ImageFileError, match='is empty'):
            images.inspect_file(path)

    def test_unreadable(self, raw_file):
        with mock.patch('builtins.open',
                        side_effect=PermissionError(13, 'Permission denied')):
            with pytest.raises(images.ImageFileError, match='not readable'):
                images.inspect_file(raw_file)

    def test_declared_format_mismatch(self, raw_file):
        with pytest.raises(images.ImageFileError,
                           match='declared qcow2 but its content is raw'):
            images.inspect_file(raw_file, 'qcow2')

    def test_truncated_qcow2_is_corrupt(self, tmp_path):
        path = tmp_path / 'cut.qcow2'
        path.write_bytes(images.QCOW2_MAGIC + b'\0\0\0\3')
        with pytest.raises(images.ImageFileError, match='corrupt'):
            images.inspect_file(path)

    def test_garbage_qcow2_header_is_rejected(self, tmp_path):
        path = tmp_path / 'bad.qcow2'
        path.write_bytes(images.QCOW2_MAGIC + b'\xff' * 4096)
        with pytest.raises(images.ImageFileError, match='unsafe|corrupt'):
            images.inspect_file(path)

    @needs_qemu_img
    def test_backing_file_is_unsafe(self, qcow2_file, tmp_path):
        child = tmp_path / 'child.qcow2'
        _qemu_img('create', '-f', 'qcow2', '-b', qcow2_file, '-F', 'qcow2',
                  child)
        with pytest.raises(images.ImageFileError,
                           match='unsafe: .*backing file'):
            images.inspect_file(child)

    @needs_qemu_img
    def test_external_data_file_is_unsafe(self, tmp_path):
        path = tmp_path / 'ext.qcow2'
        _qemu_img('create', '-f', 'qcow2', '-o',
                  f'data_file={tmp_path / "data.raw"}', path, '8M')
        with pytest.raises(images.ImageFileError, match='unsafe: .*data_file'):
            images.inspect_file(path)

    @needs_qemu_img
    def test_other_formats_are_refused(self, qcow2_file, tmp_path):
        vmdk = tmp_path / 'guest.vmdk'
        _qemu_img('convert', '-O', 'vmdk', qcow2_file, vmdk)
        with pytest.raises(images.ImageFileError, match='is vmdk'):
            images.inspect_file(vmdk)


def test_hash_file_one_pass_with_progress(tmp_path):
    path = tmp_path / 'data'
    data = bytes(range(256)) * 20000
    path.write_bytes(data)
    seen = []
    sha256, sha512 = images.hash_file(path, seen.append)
    assert sha256 == hashlib.sha256(data).hexdigest()
    assert sha512 == hashlib.sha512(data).hexdigest()
    assert seen[-1] == len(data)


def test_image_name():
    assert images.image_name('mysql', '8.4', 'debian', 'bookworm') == \
        'trove-guest-debian-bookworm-mysql-8.4'
    assert images.image_name('mysql', '8.4', 'ubuntu', None) == \
        'trove-guest-ubuntu-mysql-8.4'


def _image_file(tmp_path):
    path = tmp_path / 'guest.img'
    path.write_bytes(b'x' * 3000)
    return images.load_image_file(path)


def _response(status, payload=None):
    response = mock.Mock(status_code=status, text='',
                         headers={'Date': 'Mon, 23 Nov 2026 22:00:00 GMT'})
    response.json.return_value = payload or {}
    return response


def _image(image_id, name, sha256, sha512, status='active'):
    """Glance's JSON of an image."""
    return {'id': image_id, 'name': name, 'status': status,
            'created_at': '2026-11-23T21:00:00Z',
            'updated_at': '2026-11-23T21:00:00Z',
            'os_hash_algo': 'sha512', 'os_hash_value': sha512,
            images.SHA256_PROPERTY: sha256}


class _StubGlance:
    """conn.image double: scripted PUT results, records calls."""

    def __init__(self, put_results, existing=()):
        self.put_results = list(put_results)
        self.existing = list(existing)
        self.created = []
        self.deleted = []
        self.uploaded = {}

    def post(self, url, json):
        image_id = f'id-{len(self.created)}'
        self.created.append((image_id, json))
        self.existing.append(dict(json, id=image_id, status='queued',
                                  created_at='2026-11-23T22:00:00Z'))
        return _response(201, {'id': image_id})

    def put(self, url, data, **kwargs):
        assert kwargs['connect_retries'] == 0
        assert kwargs['allow_reauth'] is False
        result = self.put_results.pop(0)
        if isinstance(result, Exception):
            next(iter(data))
            raise result
        image_id = url.split('/')[2]
        self.uploaded[image_id] = len(b''.join(data))
        if result == 204:
            self._find(image_id)['status'] = 'active'
        return _response(result)

    def get(self, url, params=None):
        if url == '/images':
            return _response(200, {'images': [
                i for i in self.existing if i['name'] == params['name']]})
        image_id = url.split('/')[2]
        return _response(200, {'status': 'active', 'id': image_id})

    def delete(self, url):
        image_id = url.split('/')[2]
        self.deleted.append(image_id)
        self.existing = [i for i in self.existing if i['id'] != image_id]
        return _response(204)

    def _find(self, image_id):
        return next(i for i in self.existing if i['id'] == image_id)


def _conn(glance):
    return mock.Mock(image=glance)


class TestEnsureImage:

    def test_reuses_same_name_and_content(self, tmp_path):
        image_file = _image_file(tmp_path)
        existing = _image('old', 'guest', image_file.sha256,
                          image_file.sha512)
        glance = _StubGlance([], existing=[existing])
        result = images.ensure_image(_conn(glance), image_file, name='guest')
        assert (result.id, result.action, result.bytes_uploaded) == (
            'old', 'reused', 0)
        assert glance.created == []

    def test_uploads_when_content_differs(self, tmp_path):
        image_file = _image_file(tmp_path)
        existing = _image('old', 'guest', 'other', 'other')
        glance = _StubGlance([204], existing=[existing])
        result = images.ensure_image(
            _conn(glance), image_file, name='guest', tags=['trove', 'mysql'],
            properties={'hw_rng_model': 'virtio'})
        assert (result.id, result.action) == ('id-0', 'uploaded')
        assert glance.uploaded == {'id-0': image_file.size}
        body = glance.created[0][1]
        assert body['tags'] == ['mysql', 'trove']
        assert body['hw_rng_model'] == 'virtio'
        assert body[images.SHA256_PROPERTY] == image_file.sha256

    def test_retries_transient_errors_and_deletes_each_partial_image(
            self, tmp_path):
        image_file = _image_file(tmp_path)
        glance = _StubGlance([503, ConnectionResetError('reset'), 204])
        result = images.ensure_image(_conn(glance), image_file, name='guest',
                                     retries=2, retry_delay=0)
        assert result.id == 'id-2' and result.attempts == 3
        assert glance.deleted == ['id-0', 'id-1']

    def test_gives_up_and_leaves_nothing(self, tmp_path):
        image_file = _image_file(tmp_path)
        glance = _StubGlance([503, 503])
        with pytest.raises(images.ImageUploadError,
                           match='failed after 2 attempts'):
            images.ensure_image(_conn(glance), image_file, name='guest',
                                retries=1, retry_delay=0)
        assert glance.deleted == ['id-0', 'id-1']

    def test_client_errors_are_not_retried(self, tmp_path):
        image_file = _image_file(tmp_path)
        glance = _StubGlance([413])
        with pytest.raises(images.ImageUploadError, match='refused PUT'):
            images.ensure_image(_conn(glance), image_file, name='guest',
                                retry_delay=0)
        assert glance.deleted == ['id-0']

    def test_expired_token_invalidates_and_retries(self, tmp_path):
        image_file = _image_file(tmp_path)
        glance = _StubGlance([401, 204])
        conn = _conn(glance)
        result = images.ensure_image(conn, image_file, name='guest',
                                     retry_delay=0)
        assert result.action == 'uploaded'
        conn.session.invalidate.assert_called_once_with()


def test_unchanged_file_is_neither_inspected_nor_hashed_again(tmp_path):
    first = _image_file(tmp_path)
    never = {'side_effect': AssertionError}
    with mock.patch.object(images, 'inspect_file', **never), \
            mock.patch.object(images, 'hash_file', **never):
        assert images.load_image_file(first.path) == first
        assert images.load_image_file(first.path, 'raw') == first
    with pytest.raises(images.ImageFileError, match='declared qcow2'):
        images.load_image_file(first.path, 'qcow2')
    first.path.write_bytes(b'y' * 3000)
    assert images.load_image_file(first.path).sha256 != first.sha256
