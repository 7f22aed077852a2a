"""Guest image files: local validation, content hashes, Glance find-or-upload.

Nothing here touches the cloud before :func:`inspect_file` and
:func:`hash_file` have accepted the file.  :func:`ensure_image` reuses a Glance
image with the same name and content, or uploads a new one streaming from
disk (constant memory), retrying transient failures and deleting whatever
partial image an attempt left behind.
"""

import dataclasses
import hashlib
import logging
import pathlib
import time

from keystoneauth1 import exceptions as ks_exc
from oslo_utils.imageutils import format_inspector
from requests import exceptions as req_exc

from load_image import hashcache

LOG = logging.getLogger(__name__)

CHUNK_SIZE = 1024 * 1024
SUPPORTED_FORMATS = ('qcow2', 'raw')
# Formats the inspector may report for a plain disk image Glance calls raw.
RAW_LIKE_FORMATS = ('raw', 'gpt')
QCOW2_MAGIC = b'QFI\xfb'

SHA256_PROPERTY = 'owner_specified.openstack.sha256'
OBJECT_PROPERTY = 'owner_specified.openstack.object'
HASH_ALGO = 'sha512'
TRANSIENT_HTTP_STATUSES = (500, 502, 503, 504)
FAILED_STATUSES = ('killed', 'deleted', 'deactivated')


class ImageFileError(ValueError):
    """The local image file cannot be used (one line for the user)."""


class ImageUploadError(RuntimeError):
    """Glance did not end up with an active image (one line for the user)."""


class _TransientError(Exception):
    """An upload attempt failed in a way worth retrying."""


@dataclasses.dataclass(frozen=True)
class ImageFile:
    """A validated local image file and its content hashes."""

    path: pathlib.Path
    size: int
    disk_format: str
    virtual_size: int
    sha256: str
    sha512: str


@dataclasses.dataclass
class ImageResult:
    """What ensure_image() did."""

    id: str
    name: str
    action: str  # 'uploaded' or 'reused'
    bytes_uploaded: int
    attempts: int = 0


def inspect_file(path, disk_format='auto'):
    """Check that ``path`` is a safe qcow2/raw image; return (path, size, fmt).

    ``disk_format`` is 'auto' or the format the caller declares; a declared
    format that the content does not match is an error.  Raises
    ImageFileError.
    """
    path = pathlib.Path(path).expanduser().absolute()
    _check_regular_readable(path)
    size = path.stat().st_size
    if size == 0:
        raise ImageFileError(f'image file {path} is empty')
    try:
        inspector = format_inspector.detect_file_format(str(path))
    except format_inspector.ImageFormatError as exc:
        raise ImageFileError(f'image file {path} is corrupt: {exc}') from exc
    detected = str(inspector)
    if detected in RAW_LIKE_FORMATS:
        detected = 'raw'
        if _starts_with(path, QCOW2_MAGIC):
            raise ImageFileError(
                f'image file {path} is corrupt: it has a qcow2 signature '
                'but no valid qcow2 header')
    if detected not in SUPPORTED_FORMATS:
        raise ImageFileError(
            f'image file {path} is {detected}; Trove guest images must be '
            f'one of: {", ".join(SUPPORTED_FORMATS)}')
    if disk_format not in ('auto', detected):
        raise ImageFileError(
            f'image file {path} was declared {disk_format} but its content '
            f'is {detected}')
    _safety_check(path, inspector)
    virtual_size = size if detected == 'raw' else inspector.virtual_size
    return path, size, detected, virtual_size


def hash_file(path, progress=None):
    """(sha256, sha512) hex digests in one pass; progress(bytes_read)."""
    sha256 = hashlib.sha256()
    sha512 = hashlib.sha512()
    done = 0
    with open(path, 'rb') as stream:
        while chunk := stream.read(CHUNK_SIZE):
            sha256.update(chunk)
            sha512.update(chunk)
            done += len(chunk)
            if progress:
                progress(done)
    return sha256.hexdigest(), sha512.hexdigest()


def load_image_file(path, disk_format='auto', progress=None):
    """inspect_file() then hash_file(): the ImageFile ready for Glance.

    Hashes of an unchanged file are taken from the hash cache.
    """
    path, size, detected, virtual_size = inspect_file(path, disk_format)
    try:
        hashes = hashcache.lookup(path)
        if hashes is None:
            hashes = hash_file(path, progress)
            hashcache.remember(path, *hashes)
        sha256, sha512 = hashes
    except OSError as exc:
        raise ImageFileError(
            f'cannot read image file {path}: {exc.strerror}') from exc
    return ImageFile(path=path, size=size, disk_format=detected,
                     virtual_size=virtual_size, sha256=sha256, sha512=sha512)


def image_name(datastore, version, guest_os='debian',
               guest_release='bookworm'):
    """The predictable Glance name of a guest image."""
    os_part = f'{guest_os}-{guest_release}' if guest_release else guest_os
    return f'trove-guest-{os_part}-{datastore}-{version}'


def find_image(conn, name, image_file):
    """The active Glance image called ``name`` with this content, or None."""
    for image in conn.image.images(name=name):
        if image.status == 'active' and _same_content(image, image_file):
            return image
    return None


def ensure_image(conn, image_file, *, name, tags=(), properties=None,
                 visibility='private', retries=3, retry_delay=2.0,
                 timeout=600, progress=None):
    """Find or upload ``image_file`` as ``name``; return an ImageResult.

    An active image with the same name and the same sha256/sha512 is reused
    (0 bytes uploaded).  Otherwise each attempt creates the image record,
    streams the file and waits (at most ``timeout`` seconds) for 'active';
    a failed attempt deletes its image, transient failures (5xx, dropped
    connections, expired token) are retried ``retries`` times.  ``progress``
    is called with the bytes sent so far in the current attempt.
    """
    existing = find_image(conn, name, image_file)
    if existing is not None:
        LOG.info('Image %s (%s) exists and is up to date', name, existing.id)
        return ImageResult(existing.id, name, 'reused', 0)
    body = _image_body(name, image_file, tags, properties, visibility)
    for attempt in range(1, retries + 2):
        try:
            image_id = _upload_once(conn, body, image_file, timeout, progress)
        except _TransientError as exc:
            if attempt > retries:
                raise ImageUploadError(
                    f'upload of image {name} failed after {attempt} '
                    f'attempts: {exc}') from exc
            LOG.warning('Upload of image %s failed (attempt %d of %d): %s; '
                        'retrying', name, attempt, retries + 1, exc)
            time.sleep(retry_delay * attempt)
            continue
        LOG.info('Uploaded image %s (%s)', name, image_id)
        return ImageResult(image_id, name, 'uploaded', image_file.size,
                           attempts=attempt)


def delete_images(conn, image_ids):
    """Delete Glance images by id; those already gone are skipped."""
    for image_id in image_ids:
        LOG.info('Deleting image %s', image_id)
        conn.image.delete_image(image_id, ignore_missing=True)


def other_images(conn, name, keep_id):
    """Ids of the other images called ``name`` (older uploads)."""
    return [image.id for image in conn.image.images(name=name)
            if image.id != keep_id]


def _check_regular_readable(path):
    try:
        if not path.exists():
            raise ImageFileError(f'image file {path} does not exist')
        if not path.is_file():
            raise ImageFileError(f'image file {path} is not a regular file')
        with open(path, 'rb'):
            pass
    except PermissionError as exc:
        raise ImageFileError(
            f'image file {path} is not readable: {exc.strerror}') from exc


def _starts_with(path, magic):
    with open(path, 'rb') as stream:
        return stream.read(len(magic)) == magic


def _safety_check(path, inspector):
    try:
        inspector.safety_check()
    except format_inspector.SafetyCheckFailed as exc:
        reasons = '; '.join(str(failure)
                            for failure in exc.failures.values())
        raise ImageFileError(
            f'image file {path} is unsafe: {reasons}') from exc
    except format_inspector.ImageFormatError as exc:
        raise ImageFileError(f'image file {path} is corrupt: {exc}') from exc


def _same_content(image, image_file):
    properties = image.properties or {}
    if properties.get(SHA256_PROPERTY) != image_file.sha256:
        return False
    if image.hash_algo == HASH_ALGO and image.hash_value:
        return image.hash_value == image_file.sha512
    return True


def _image_body(name, image_file, tags, properties, visibility):
    body = {
        'name': name,
        'disk_format': image_file.disk_format,
        'container_format': 'bare',
        'visibility': visibility,
        'tags': sorted(set(tags)),
        SHA256_PROPERTY: image_file.sha256,
        OBJECT_PROPERTY: f'images/{name}',
    }
    body.update({key: str(value) for key, value in (properties or {}).items()})
    return body


def _upload_once(conn, body, image_file, timeout, progress):
    """One attempt: create, upload, wait; the image is deleted on failure."""
    response = _request(conn, 'post', '/images', json=body)
    image_id = response.json()['id']
    try:
        _put_data(conn, image_id, image_file, progress)
        _wait_active(conn, image_id, image_file, timeout)
    except BaseException:
        _delete_quietly(conn, image_id)
        raise
    return image_id


def _put_data(conn, image_id, image_file, progress):
    # A streamed body cannot be sent twice: keystoneauth must not retry it
    # (connect, 503 or 401 retries); the caller's attempt loop does.
    with open(image_file.path, 'rb') as stream:
        reader = _CountingReader(stream, image_file.size, progress)
        _request(conn, 'put', f'/images/{image_id}/file', data=reader,
                 headers={'Content-Type': 'application/octet-stream'},
                 connect_retries=0, status_code_retries=0,
                 allow_reauth=False)
    if reader.sent != image_file.size:
        raise _TransientError(
            f'sent {reader.sent} of {image_file.size} bytes')


def _wait_active(conn, image_id, image_file, timeout):
    deadline = time.monotonic() + timeout
    interval = 0.2
    while True:
        image = _request(conn, 'get', f'/images/{image_id}').json()
        status = image.get('status')
        if status == 'active':
            _check_stored_hash(image, image_file)
            return
        if status in FAILED_STATUSES:
            raise ImageUploadError(f'image {image_id} went to status {status}')
        if status == 'queued':
            raise _TransientError('Glance did not keep the uploaded data')
        if time.monotonic() > deadline:
            raise ImageUploadError(
                f'image {image_id} still {status} after {timeout} s')
        time.sleep(interval)
        interval = min(interval * 2, 5.0)


def _check_stored_hash(image, image_file):
    if image.get('os_hash_algo') == HASH_ALGO and \
            image.get('os_hash_value') != image_file.sha512:
        raise _TransientError('Glance stored different content '
                              '(sha512 mismatch)')


def _request(conn, method, url, **kwargs):
    """A Glance API call; transient failures raise _TransientError."""
    try:
        response = getattr(conn.image, method)(url, **kwargs)
    except (ks_exc.ConnectionError, req_exc.ConnectionError,
            req_exc.ChunkedEncodingError, ConnectionError) as exc:
        raise _TransientError(f'connection to Glance failed ({exc})') from exc
    if response.status_code == 401:
        conn.session.invalidate()
        raise _TransientError('token expired or was revoked')
    if response.status_code in TRANSIENT_HTTP_STATUSES:
        raise _TransientError(
            f'Glance answered {response.status_code} to {method.upper()}')
    if response.status_code >= 400:
        raise ImageUploadError(
            f'Glance refused {method.upper()} {url}: '
            f'{response.status_code} {_error_text(response)}')
    return response


def _error_text(response):
    text = ' '.join(response.text.split())
    return text[:200]


def _delete_quietly(conn, image_id, attempts=5, delay=0.5):
    """Delete an image we made, retrying while Glance is busy with it."""
    for attempt in range(1, attempts + 1):
        try:
            response = conn.image.delete(f'/images/{image_id}')
        except Exception as exc:  # noqa: BLE001 - the original error wins
            problem = str(exc)
        else:
            if response.status_code in (204, 404):
                LOG.info('Deleted partial image %s', image_id)
                return
            if response.status_code == 401:
                conn.session.invalidate()
            problem = f'HTTP {response.status_code}'
        if attempt < attempts:
            time.sleep(delay * attempt)
    LOG.error('Could not delete partial image %s (%s); delete it by hand',
              image_id, problem)


class _CountingReader:
    """Request body for requests: a known length (so Content-Length is sent,
    not chunked encoding) and 1 MiB chunks, counted and reported."""

    def __init__(self, stream, size, progress):
        self._stream = stream
        self._size = size
        self._progress = progress
        self.sent = 0

    def __len__(self):
        return self._size

    def __iter__(self):
        while data := self._stream.read(CHUNK_SIZE):
            self.sent += len(data)
            if self._progress:
                self._progress(self.sent)
            yield data
