"""A Nova keypair from a public key file the user already has.

Keys are never generated here. The keypair is found by name: the same key
leaves it alone, a different key is an error unless ``replace`` is given
(then it is deleted and recreated).
"""

import logging
import pathlib

from trovestack import testenv
from trovestack.common import connection
from trovestack.common.results import Row

LOG = logging.getLogger(__name__)

DEFAULT_KEYPAIR_NAME = 'trove-mgmt'
_KEY_TYPES = ('ssh-', 'ecdsa-', 'sk-ssh-', 'sk-ecdsa-')


def read_public_key(path: pathlib.Path | str) -> str:
    """The 'type base64' part of an OpenSSH public key file."""
    try:
        with open(path, encoding='utf-8') as stream:
            text = stream.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise testenv.TestEnvError(
            f'cannot read public key {path}: '
            f'{getattr(exc, "strerror", None) or exc}') from None
    if 'PRIVATE KEY' in text:
        raise testenv.TestEnvError(
            f'{path} is a private key; give the .pub file')
    key = canonical(text)
    if not key.startswith(_KEY_TYPES) or ' ' not in key:
        raise testenv.TestEnvError(
            f'{path} is not an OpenSSH public key')
    return key


def canonical(public_key: str) -> str:
    """Key type and data, without the comment."""
    return ' '.join(public_key.split()[:2])


def ensure_keypair(conn: connection.Connection, name: str,
                   public_key_path: str, *,
                   replace: bool = False, dry_run: bool = False) -> Row:
    """Find or create keypair ``name``; returns a Row."""
    public_key = read_public_key(public_key_path)
    existing = conn.compute.find_keypair(name, ignore_missing=True)
    if existing is None:
        action = testenv.CREATED
    elif canonical(existing.public_key or '') == public_key:
        return Row('keypair', name, testenv.UNCHANGED,
                   existing.fingerprint or '')
    elif not replace:
        raise testenv.TestEnvError(
            f'keypair {name!r} exists with a different public key than '
            f'{public_key_path}; nothing changed (use --replace)')
    else:
        action = testenv.REPLACED
    if dry_run:
        return Row('keypair', name, testenv.planned(action),
                   public_key_path)
    if existing is not None:
        LOG.info('Deleting keypair %s to recreate it', name)
        conn.compute.delete_keypair(existing, ignore_missing=True)
    LOG.info('Creating keypair %s from %s', name, public_key_path)
    created = conn.compute.create_keypair(name=name, public_key=public_key)
    return Row('keypair', name, action, created.fingerprint or '')
