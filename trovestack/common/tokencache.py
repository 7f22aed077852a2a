"""Keystone tokens kept between runs: private to the user, never printed.

A run that changes nothing spent most of its wall time waiting for
Keystone to issue a token (benchmarks/bench_load_image.py).  :func:`attach`
gives a keystoneauth identity plugin the token an earlier run with the same
auth parameters got, while it stays valid for at least ``MIN_REMAINING``
seconds, and remembers every token the plugin gets from then on, so a token
Keystone rejects (keystoneauth re-authenticates once on a 401 answer) is
replaced at once.

Where and how:

* ``$XDG_CACHE_HOME/trovestack/tokens`` (default ``~/.cache``), a 0700
  directory of 0600 files owned by the user; anything else there (another
  owner, wider modes, a symbolic link) turns the cache off for the run,
  with a warning.
* An entry's name is an HMAC-SHA256, keyed with a random secret of that
  directory, of the plugin's auth parameters (auth URL, user, project,
  domain... and the password): the name tells nothing about the password,
  not even to a dictionary attack, and a new password is a new entry.
* An entry holds keystoneauth's auth state (the token and its body) and
  nothing else; writes are atomic, so concurrent runs read a whole entry.
* ``TROVESTACK_TOKEN_CACHE=0`` (or ``no``/``false``/``off``) turns it off.
* A restored token is checked once with Keystone (:func:`still_valid`,
  one HEAD request) before it is used.  A Keystone set up again under the
  same credentials (devstack's unstack.sh and stack.sh: new fernet keys,
  new project ids) rejects it; without the check keystoneauth's retry
  after the 401 kept the old project's id in URLs that carry one
  (Trove's ``/v1.0/<project>``), and Trove answered 403.

openstacksdk's own cache (``cache: {auth: true}`` in clouds.yaml) keeps the
same auth state in the ``keyring`` library, which has no backend on a host
without a desktop session (it then caches nothing), costs 0.15-0.3 s to
import, and names its entries with an unkeyed sha256 of the parameters.
"""

import hashlib
import hmac
import json
import logging
import os
import pathlib
import stat
import tempfile
import time
from typing import Any

from trovestack.common import files

LOG = logging.getLogger(__name__)

SWITCH = 'TROVESTACK_TOKEN_CACHE'
# A cached token is used only while it has this many seconds left (an
# upload that outlives it gets a new one: load_image.images).
MIN_REMAINING = 600
# Files untouched this long are removed when a new token is stored.
MAX_AGE = 24 * 3600
_KEY_FILE = 'key'
_KEY_BYTES = 32
_SUFFIX = '.json'
_OFF = ('0', 'no', 'false', 'off')


def enabled() -> bool:
    """False when $TROVESTACK_TOKEN_CACHE turns the cache off."""
    return os.environ.get(SWITCH, '').strip().lower() not in _OFF


def default_directory() -> pathlib.Path:
    return files.cache_dir('trovestack', 'tokens')


def attach(auth: Any, directory: pathlib.Path | None = None) -> bool:
    """Give ``auth`` (a keystoneauth identity plugin) its cached token, if
    one is still valid, and store every new token it gets; True when a
    cached token was installed.  Plugins that can not name their auth
    parameters (keystoneauth's get_cache_id_elements) are left alone.
    """
    try:
        entry = _Entry.of(auth, directory or default_directory())
    except (OSError, NotImplementedError, AttributeError) as exc:
        LOG.debug('Token cache not used: %s', exc)
        return False
    if entry is None:
        return False
    installed = _install(auth, entry.read())
    stored = auth.auth_ref
    get_access = auth.get_access

    def get_access_and_store(session: Any, **kwargs: Any) -> Any:
        nonlocal stored
        access = get_access(session, **kwargs)
        if auth.auth_ref is not stored:
            stored = auth.auth_ref
            entry.write(auth.get_auth_state())
        return access

    auth.get_access = get_access_and_store
    return installed


def still_valid(session: Any, auth: Any) -> bool:
    """Whether Keystone still accepts ``auth``'s current token (HEAD
    /v3/auth/tokens with the token as its own subject).  True when it can
    not be asked (no v3 auth URL, Keystone unreachable: the login that
    follows reports that)."""
    ref = getattr(auth, 'auth_ref', None)
    url = str(getattr(auth, 'auth_url', '') or '').rstrip('/')
    if ref is None or not ref.auth_token or not url or url.endswith('/v2.0'):
        return True
    if not url.endswith('/v3'):
        url += '/v3'
    headers = {'X-Auth-Token': ref.auth_token,
               'X-Subject-Token': ref.auth_token}
    try:
        response = session.request(f'{url}/auth/tokens', 'HEAD',
                                   authenticated=False, headers=headers,
                                   raise_exc=False, log=False)
    except Exception as exc:  # noqa: BLE001 - the login reports it
        LOG.debug('Cached token not checked: %s', exc)
        return True
    if response.status_code == 200:
        return True
    LOG.debug('Keystone no longer accepts the cached token (HTTP %s)',
              response.status_code)
    return False


def _install(auth: Any, state: str | None) -> bool:
    if not state:
        return False
    try:
        auth.set_auth_state(state)
        ref = auth.auth_ref
        usable = ref is not None and ref.auth_token and \
            not ref.will_expire_soon(MIN_REMAINING)
    except (ValueError, KeyError, TypeError, AttributeError):
        usable = False
    if not usable:
        auth.set_auth_state(None)
        return False
    LOG.debug('Reusing a cached token (expires %s)', ref.expires)
    return True


class _Entry:
    """One cache file: the auth state of one set of auth parameters."""

    def __init__(self, directory: pathlib.Path, name: str) -> None:
        self.directory = directory
        self.path = directory / name

    @classmethod
    def of(cls, auth: Any, directory: pathlib.Path) -> '_Entry | None':
        """The entry of the plugin's parameters; None if the directory is
        not private to this user."""
        elements = auth.get_cache_id_elements()
        if not _private_directory(directory):
            return None
        scope = getattr(auth, 'system_scope', None) or \
            getattr(auth, '_system_scope', None)
        parameters = json.dumps(
            [f'{type(auth).__module__}.{type(auth).__qualname__}', scope,
             sorted((key, value) for key, value in elements.items()
                    if value is not None)], sort_keys=True)
        digest = hmac.new(_secret(directory), parameters.encode(),
                          hashlib.sha256).hexdigest()
        return cls(directory, digest + _SUFFIX)

    def read(self) -> str | None:
        """The stored auth state, or None."""
        try:
            return _read_private(self.path).decode()
        except (OSError, UnicodeDecodeError):
            return None

    def write(self, state: str) -> None:
        if not state:
            return
        try:
            files.write_atomic(self.path, state, mode=0o600)
        except OSError as exc:
            LOG.debug('Token not cached: %s', exc)
            return
        _remove_stale(self.directory, keep=self.path)


def _private_directory(directory: pathlib.Path) -> bool:
    """Make the directory (0700) if needed; True if it is a directory of
    this user's that nobody else can read or write."""
    directory.parent.mkdir(parents=True, exist_ok=True)
    try:
        directory.mkdir(mode=0o700)
    except FileExistsError:
        pass
    info = os.lstat(directory)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid() or \
            info.st_mode & 0o077:
        LOG.warning('Token cache %s not used: it must be a directory of '
                    'yours that only you can use (chmod 700)', directory)
        return False
    return True


def _read_private(path: pathlib.Path) -> bytes:
    """The bytes of a regular file of this user's with no group or other
    permissions (no symbolic link followed); OSError otherwise."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, 'rb') as stream:
        info = os.fstat(stream.fileno())
        if not stat.S_ISREG(info.st_mode) or \
                info.st_uid != os.geteuid() or info.st_mode & 0o077:
            raise PermissionError(f'{path} is not private')
        return stream.read()


def _secret(directory: pathlib.Path) -> bytes:
    """The directory's HMAC key, made on first use (atomically: concurrent
    first runs agree on one key)."""
    path = directory / _KEY_FILE
    try:
        secret = _read_private(path)
    except FileNotFoundError:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix='.key.')  # 0600
        try:
            with os.fdopen(fd, 'wb') as stream:
                stream.write(os.urandom(_KEY_BYTES))
                stream.flush()
                os.fsync(stream.fileno())
            try:
                os.link(tmp, path)  # only if no other run made one first
            except FileExistsError:
                pass
        finally:
            os.unlink(tmp)
        secret = _read_private(path)
    if len(secret) < _KEY_BYTES:
        raise PermissionError(f'{path} is too short')
    return secret


def _remove_stale(directory: pathlib.Path, keep: pathlib.Path) -> None:
    """Remove entries (and temporary files of killed runs) untouched for
    MAX_AGE; the key stays."""
    cutoff = time.time() - MAX_AGE
    for path in directory.iterdir():
        try:
            if path not in (keep, directory / _KEY_FILE) and \
                    path.lstat().st_mtime < cutoff:
                path.unlink()
        except OSError:
            pass
