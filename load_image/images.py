"""Guest image files: local validation, content hashes, Glance find-or-upload.

Nothing here touches the cloud before :func:`inspect_file` and
:func:`hash_file` have accepted the file.  :func:`ensure_image` reuses a Glance
image with the same name and content, or uploads a new one streaming from
disk (constant memory), retrying transient failures and deleting whatever
partial image an attempt left behind.

It converges under concurrency and after crashes, with Glance as the only
shared state (so it holds across hosts): of the images with one name and one
content, the oldest (created_at, then id) that is active or still being
uploaded by a live process wins; every run waits for the winner or, if there
is none, uploads, and a run whose own image lost deletes it.  Each image
record names its uploader (see load_image.uploader), so partial images of
dead uploads are removed by the next run and live ones are left alone.
"""

import dataclasses
import datetime
import email.utils
import logging
import pathlib
import time
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Iterator
from typing import Any
from typing import BinaryIO

from keystoneauth1 import exceptions as ks_exc
from requests import exceptions as req_exc

from load_image import hashcache
from load_image import uploader as uploaders
from trovestack.common import connection
from trovestack.common import files
from trovestack.common.errors import UserError

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
# Statuses of an image whose data is not (yet) stored.
PARTIAL_STATUSES = ('queued', 'saving', 'importing', 'uploading')
# A partial image uploaded from another machine is taken as abandoned when
# it has not changed for this long (an upload must not take longer).
STALE_AFTER = 3600.0
LIST_LIMIT = 100


class ImageFileError(UserError, ValueError):
    """The local image file cannot be used (one line for the user)."""


class ImageUploadError(UserError, RuntimeError):
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
    # Leftovers of earlier runs this one deleted: partial images of dead
    # uploads, duplicates of this content that lost.
    removed: tuple = ()


def inspect_file(
        path: pathlib.Path | str,
        disk_format: str = 'auto') -> tuple[pathlib.Path, int, str, int]:
    """Check that ``path`` is a safe qcow2/raw image; return (absolute path,
    size, detected format, virtual size).

    ``disk_format`` is 'auto' or the format the caller declares; a declared
    format that the content does not match is an error.  Raises
    ImageFileError.
    """
    from oslo_utils.imageutils import format_inspector

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
    # a format was detected: there is an inspector
    virtual_size = size if detected == 'raw' else \
        inspector.virtual_size  # type: ignore[union-attr]
    return path, size, detected, virtual_size


def hash_file(
        path: pathlib.Path | str,
        progress: Callable[[int], None] | None = None) -> tuple[str, str]:
    """(sha256, sha512) hex digests in one pass; progress(bytes_read)."""
    done = 0

    def advance(nbytes: int) -> None:
        nonlocal done
        done += nbytes
        progress(done)  # type: ignore[misc]  # given when advance is

    digests = files.file_digests(path, ('sha256', HASH_ALGO),
                                 advance if progress else None)
    return digests['sha256'], digests[HASH_ALGO]


def load_image_file(
        path: pathlib.Path | str, disk_format: str = 'auto',
        progress: Callable[[int], None] | None = None) -> ImageFile:
    """inspect_file() then hash_file(): the ImageFile ready for Glance.

    A file unchanged since it was last accepted (same size, inode, mtime
    and ctime) is neither inspected nor hashed again: the hash cache
    remembers its format and hashes.
    """
    remembered = _remembered_image_file(path, disk_format)
    if remembered is not None:
        return remembered
    path, size, detected, virtual_size = inspect_file(path, disk_format)
    try:
        sha256, sha512 = hash_file(path, progress)
        hashcache.remember(path, sha256, sha512, disk_format=detected,
                           virtual_size=virtual_size)
    except OSError as exc:
        raise ImageFileError(
            f'cannot read image file {path}: {exc.strerror}') from exc
    return ImageFile(path=path, size=size, disk_format=detected,
                     virtual_size=virtual_size, sha256=sha256, sha512=sha512)


def _remembered_image_file(path: pathlib.Path | str,
                           disk_format: str) -> ImageFile | None:
    """The ImageFile of an unchanged, already accepted file, or None."""
    path = pathlib.Path(path).expanduser().absolute()
    try:
        entry = hashcache.lookup_entry(path)
    except OSError:
        return None  # inspect_file() explains
    if not entry or entry.get('disk_format') not in SUPPORTED_FORMATS or \
            disk_format not in ('auto', entry['disk_format']):
        return None
    return ImageFile(path=path, size=entry['identity'][0],
                     disk_format=entry['disk_format'],
                     virtual_size=entry['virtual_size'],
                     sha256=entry['sha256'], sha512=entry['sha512'])


def image_name(datastore: str, version: str, guest_os: str = 'debian',
               guest_release: str = 'bookworm') -> str:
    """The predictable Glance name of a guest image."""
    os_part = f'{guest_os}-{guest_release}' if guest_release else guest_os
    return f'trove-guest-{os_part}-{datastore}-{version}'


def find_image(conn: connection.Connection, name: str,
               image_file: ImageFile) -> dict[str, Any] | None:
    """The active Glance image (a dict) called ``name`` with this content,
    the oldest if there are several, or None."""
    same = [image for image in _list_images(conn, name).images
            if image.get('status') == 'active'
            and _same_content(image, image_file)]
    return min(same, key=_creation_order, default=None)


def ensure_image(conn: connection.Connection, image_file: ImageFile, *,
                 name: str, tags: Iterable[str] = (),
                 properties: dict[str, str] | None = None,
                 visibility: str = 'private', retries: int = 3,
                 retry_delay: float = 2.0, timeout: float = 600,
                 progress: Callable[[int], None] | None = None,
                 stale_after: float = STALE_AFTER) -> ImageResult:
    """Find or upload ``image_file`` as ``name``; return an ImageResult.

    An active image with the same name and the same sha256/sha512 is reused
    (0 bytes uploaded); while another live process is uploading the same
    content, this waits for it (at most ``timeout`` seconds).  Otherwise
    each attempt creates the image record, streams the file and waits (at
    most ``timeout`` seconds) for 'active'; a failed attempt deletes its
    image, transient failures (5xx, dropped connections, expired token) are
    retried ``retries`` times.  If an older image of the same content shows
    up meanwhile, it wins and ours is deleted.  Partial images of dead
    uploads (on another machine: unchanged for ``stale_after`` seconds) are
    deleted on the way.  ``progress`` is called with the bytes sent so far
    in the current attempt.
    """
    run = _Convergence(conn, name, image_file, stale_after)
    body = _image_body(name, image_file, tags, properties, visibility)
    body.update(run.me.properties())
    deadline = time.monotonic() + timeout
    attempt = 0
    while True:
        leader = run.survey()
        if leader is not None and leader['status'] == 'active':
            LOG.info('Image %s (%s) exists and is up to date', name,
                     leader['id'])
            _widen_visibility(conn, leader, visibility)
            return run.result(leader['id'], 'reused', 0, attempt)
        if leader is not None:
            run.wait_for(leader, deadline, timeout)
            continue
        attempt += 1
        try:
            image_id = _upload_once(conn, body, image_file, timeout,
                                    progress, run.claim)
        except _Yield:
            attempt -= 1
            deadline = time.monotonic() + timeout
            continue
        except _TransientError as exc:
            if attempt > retries:
                raise ImageUploadError(
                    f'upload of image {name} failed after {attempt} '
                    f'attempts: {exc}') from exc
            LOG.warning('Upload of image %s failed (attempt %d of %d): %s; '
                        'retrying', name, attempt, retries + 1, exc)
            time.sleep(retry_delay * attempt)
            continue
        winner = run.settle(image_id, timeout)
        if winner == image_id:
            LOG.info('Uploaded image %s (%s)', name, image_id)
            return run.result(image_id, 'uploaded', image_file.size, attempt)
        return run.result(winner, 'reused', image_file.size, attempt)


# Who sees an image, from fewest to most.
VISIBILITIES = ('private', 'shared', 'community', 'public')


def _widen_visibility(conn: connection.Connection, image: dict[str, Any],
                      visibility: str) -> None:
    """An image reused for a request that wants it seen more widely (the
    devstack plugin's public image of content provision loaded private) is
    made so; a wider one stays as it is, so two loaders never take turns
    at changing it."""
    current = image.get('visibility', 'private')
    if current not in VISIBILITIES or visibility not in VISIBILITIES or \
            VISIBILITIES.index(visibility) <= VISIBILITIES.index(current):
        return
    LOG.info('Image %s (%s): visibility %s -> %s', image.get('name'),
             image['id'], current, visibility)
    conn.image.update_image(image['id'], visibility=visibility)


def delete_images(conn: connection.Connection,
                  image_ids: Iterable[str]) -> None:
    """Delete Glance images by id; those already gone are skipped."""
    for image_id in image_ids:
        LOG.info('Deleting image %s', image_id)
        conn.image.delete_image(image_id, ignore_missing=True)


def other_images(conn: connection.Connection, name: str, keep_id: str,
                 stale_after: float = STALE_AFTER) -> list[str]:
    """Ids of the other images called ``name`` (older uploads), except
    those a live process may still be uploading or about to register."""
    listing = _list_images(conn, name)
    me = uploaders.Uploader.current()
    return [image['id'] for image in listing.images
            if image['id'] != keep_id and (
                uploaders.Uploader.of_image(image) is None
                or uploaders.abandoned(image, me, listing.now, stale_after))]


class _Yield(Exception):
    """An older image of the same content exists: let it win."""


@dataclasses.dataclass
class _Listing:
    images: list
    now: datetime.datetime  # by the Glance server's clock


class _Convergence:
    """One ensure_image() call's view of the Glance images called ``name``.

    The leader is the oldest image (created_at, then id) with this content
    that is active or that a live process is still uploading: every run
    settles on it.
    """

    def __init__(self, conn: connection.Connection, name: str,
                 image_file: ImageFile, stale_after: float) -> None:
        self.conn = conn
        self.name = name
        self.image_file = image_file
        self.stale_after = stale_after
        self.me = uploaders.Uploader.current()
        self.removed: list[str] = []
        self._waiting_for = None

    def survey(self, current_id: str | None = None) -> dict[str, Any] | None:
        """Delete leftovers of dead runs; return the leader or None.

        ``current_id`` is the image this process is uploading right now.
        """
        listing = _list_images(self.conn, self.name)
        candidates, leftovers = [], []
        for image in listing.images:
            status = image.get('status')
            if image['id'] == current_id:
                candidates.append(image)
            elif status == 'active':
                if _same_content(image, self.image_file):
                    candidates.append(image)
            elif status in PARTIAL_STATUSES or status == 'killed':
                if self._partial_abandoned(image, listing.now, current_id):
                    leftovers.append(image)
                elif status != 'killed' and \
                        image.get(SHA256_PROPERTY) == self.image_file.sha256:
                    candidates.append(image)
        candidates.sort(key=_creation_order)
        leftovers += [image for image in candidates[1:]
                      if image['status'] == 'active'
                      and self._duplicate_abandoned(image, listing.now)]
        for image in leftovers:
            LOG.info('Deleting image %s (%s, %s) left behind by %s', image[
                'id'], image['status'], self.name, _uploader_text(image))
            _delete_quietly(self.conn, image['id'])
            self.removed.append(image['id'])
        return candidates[0] if candidates else None

    def claim(self, image_id: str) -> None:
        """Right after creating ``image_id``: give way to an older one."""
        leader = self.survey(current_id=image_id)
        if leader is not None and leader['id'] != image_id:
            LOG.info('Image %s (%s) of the same content is older than ours '
                     '(%s): using it', leader['id'], leader['status'],
                     image_id)
            raise _Yield()

    def settle(self, image_id: str, timeout: float) -> str:
        """Our image is active: keep it, or give way to an older one (an
        upload we could not see when we claimed).  Returns the winner."""
        deadline = time.monotonic() + timeout
        while True:
            leader = self.survey(current_id=image_id)
            if leader is None:
                raise ImageUploadError(
                    f'image {image_id} ({self.name}) was deleted by someone '
                    'else right after its upload')
            if leader['id'] == image_id:
                return image_id
            if leader['status'] == 'active':
                LOG.info('Image %s (%s) has the same content and is older: '
                         'deleting ours (%s)', leader['id'], self.name,
                         image_id)
                _delete_quietly(self.conn, image_id)
                return leader['id']
            if time.monotonic() > deadline:
                _delete_quietly(self.conn, image_id)
                raise ImageUploadError(
                    f'an older upload of the same content as image '
                    f'{self.name} ({leader["id"]} by '
                    f'{_uploader_text(leader)}) is still '
                    f'{leader["status"]} after {timeout:g} s; run again '
                    'later')
            time.sleep(1.0)

    def wait_for(self, leader: dict[str, Any], deadline: float,
                 timeout: float) -> None:
        """One pause while another process uploads this content."""
        if time.monotonic() > deadline:
            raise ImageUploadError(
                f'image {self.name} ({leader["id"]}) is being uploaded by '
                f'{_uploader_text(leader)} and is still '
                f'{leader["status"]} after {timeout:g} s; run again later')
        if self._waiting_for != leader['id']:
            self._waiting_for = leader['id']
            LOG.info('Waiting for image %s (%s), which %s is uploading',
                     self.name, leader['id'], _uploader_text(leader))
        time.sleep(1.0)

    def result(self, image_id: str, action: str, bytes_uploaded: int,
               attempts: int) -> ImageResult:
        return ImageResult(image_id, self.name, action, bytes_uploaded,
                           attempts=attempts, removed=tuple(self.removed))

    def _partial_abandoned(self, image: dict[str, Any], now: datetime.datetime,
                           current_id: str | None) -> bool:
        if uploaders.Uploader.of_image(image) is None and \
                not image.get(SHA256_PROPERTY):
            return False  # not made by a content-deduplicating uploader
        return uploaders.abandoned(image, self.me, now, self.stale_after,
                                   current_id=current_id)

    def _duplicate_abandoned(self, image: dict[str, Any],
                             now: datetime.datetime) -> bool:
        # An active image of this content that lost: its uploader died
        # before deleting it.  Images of unknown uploaders, or of this
        # process, are never taken for leftovers.
        uploader = uploaders.Uploader.of_image(image)
        if uploader is None or uploader == self.me:
            return False
        return uploaders.abandoned(image, self.me, now, self.stale_after)


def _list_images(conn: connection.Connection, name: str) -> '_Listing':
    """Every image called ``name`` (any status), and the server's time."""
    images, marker = [], None
    try:
        while True:
            params = {'name': name, 'limit': LIST_LIMIT}
            if marker:
                params['marker'] = marker
            response = _request(conn, 'get', '/images', params=params)
            page = response.json().get('images', [])
            images += page
            if len(page) < LIST_LIMIT:
                break
            marker = page[-1]['id']
    except _TransientError as exc:
        raise ImageUploadError(
            f'cannot list the images called {name} in Glance: {exc}') from exc
    return _Listing(images, _server_time(response))


def _server_time(response: Any) -> datetime.datetime:
    try:
        return email.utils.parsedate_to_datetime(response.headers['Date'])
    except (KeyError, TypeError, ValueError):
        return datetime.datetime.now(datetime.timezone.utc)


def _creation_order(image: dict[str, Any]) -> tuple[str, str]:
    return (image.get('created_at') or '', image['id'])


def _uploader_text(image: dict[str, Any]) -> str:
    uploader = uploaders.Uploader.of_image(image)
    return str(uploader) if uploader else 'an unknown uploader'


def _check_regular_readable(path: pathlib.Path) -> None:
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


def _starts_with(path: pathlib.Path, magic: bytes) -> bool:
    with open(path, 'rb') as stream:
        return stream.read(len(magic)) == magic


def _safety_check(path: pathlib.Path, inspector: Any) -> None:
    from oslo_utils.imageutils import format_inspector

    try:
        inspector.safety_check()
    except format_inspector.SafetyCheckFailed as exc:
        reasons = '; '.join(str(failure)
                            for failure in exc.failures.values())
        raise ImageFileError(
            f'image file {path} is unsafe: {reasons}') from exc
    except format_inspector.ImageFormatError as exc:
        raise ImageFileError(f'image file {path} is corrupt: {exc}') from exc


def _same_content(image: dict[str, Any], image_file: ImageFile) -> bool:
    """Glance's JSON of an image holds this content (sha256 we stamped,
    and Glance's own sha512 of the stored data when it has one)."""
    if image.get(SHA256_PROPERTY) != image_file.sha256:
        return False
    if image.get('os_hash_algo') == HASH_ALGO and image.get('os_hash_value'):
        return image['os_hash_value'] == image_file.sha512
    return True


def _image_body(name: str, image_file: ImageFile, tags: Iterable[str],
                properties: dict[str, str] | None,
                visibility: str) -> dict[str, Any]:
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


def _upload_once(conn: connection.Connection, body: dict[str, Any],
                 image_file: ImageFile, timeout: float,
                 progress: Callable[[int], None] | None,
                 claim: Callable[[str], object]) -> str:
    """One attempt: create, claim, upload, wait; the image is deleted on
    failure (or when claim() finds an older image of the same content)."""
    response = _request(conn, 'post', '/images', json=body)
    image_id = response.json()['id']
    try:
        claim(image_id)
        _put_data(conn, image_id, image_file, progress)
        _wait_active(conn, image_id, image_file, timeout)
    except BaseException:
        _delete_quietly(conn, image_id)
        raise
    return image_id


def _put_data(conn: connection.Connection, image_id: str,
              image_file: ImageFile,
              progress: Callable[[int], None] | None) -> None:
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


def _wait_active(conn: connection.Connection, image_id: str,
                 image_file: ImageFile, timeout: float) -> None:
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


def _check_stored_hash(image: dict[str, Any], image_file: ImageFile) -> None:
    if image.get('os_hash_algo') == HASH_ALGO and \
            image.get('os_hash_value') != image_file.sha512:
        raise _TransientError('Glance stored different content '
                              '(sha512 mismatch)')


def _glance(conn: connection.Connection) -> Any:
    return connection.rest_api(conn, 'image')


def _request(conn: connection.Connection, method: str, url: str,
             **kwargs: Any) -> Any:
    """A Glance API call; transient failures raise _TransientError."""
    try:
        response = getattr(_glance(conn), method)(url, **kwargs)
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


def _error_text(response: Any) -> str:
    text = ' '.join(response.text.split())
    return text[:200]


def _delete_quietly(conn: connection.Connection, image_id: str,
                    attempts: int = 5, delay: float = 0.5) -> None:
    """Delete an image we made, retrying while Glance is busy with it."""
    for attempt in range(1, attempts + 1):
        try:
            response = _glance(conn).delete(f'/images/{image_id}')
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

    def __init__(self, stream: BinaryIO, size: int,
                 progress: Callable[[int], None] | None) -> None:
        self._stream = stream
        self._size = size
        self._progress = progress
        self.sent = 0

    def __len__(self) -> int:
        return self._size

    def __iter__(self) -> Iterator[bytes]:
        while data := self._stream.read(CHUNK_SIZE):
            self.sent += len(data)
            if self._progress:
                self._progress(self.sent)
            yield data
