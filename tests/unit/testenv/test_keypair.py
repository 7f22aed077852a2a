import types

import pytest

from tests.unit.testenv import fakes
from trovestack import testenv
from trovestack.testenv import keypair

KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExampleKeyData'
OTHER = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOtherKeyData'


@pytest.fixture
def key_file(tmp_path):
    path = tmp_path / 'id.pub'
    path.write_text(KEY + ' me@host\n')
    return str(path)


def _conn(existing=None):
    conn = fakes.connection()
    conn.compute.find_keypair.return_value = existing
    conn.compute.create_keypair.return_value = types.SimpleNamespace(
        fingerprint='aa:bb')
    return conn


def test_read_public_key_drops_comment(key_file):
    assert keypair.read_public_key(key_file) == KEY


@pytest.mark.parametrize('content, message', [
    ('-----BEGIN OPENSSH PRIVATE KEY-----\n', 'is a private key'),
    ('hello world\n', 'is not an OpenSSH public key'),
])
def test_read_public_key_rejects(tmp_path, content, message):
    path = tmp_path / 'key'
    path.write_text(content)
    with pytest.raises(testenv.TestEnvError, match=message):
        keypair.read_public_key(str(path))


def test_missing_key_file(tmp_path):
    with pytest.raises(testenv.TestEnvError, match='cannot read public key'):
        keypair.read_public_key(str(tmp_path / 'nope.pub'))


def test_creates_when_missing(key_file):
    conn = _conn()
    change = keypair.ensure_keypair(conn, 'trove-mgmt', key_file)
    assert (change.action, change.detail) == ('created', 'aa:bb')
    conn.compute.create_keypair.assert_called_once_with(
        name='trove-mgmt', public_key=KEY)


def test_same_key_is_unchanged(key_file):
    existing = types.SimpleNamespace(public_key=KEY + ' other-comment',
                                     fingerprint='aa:bb')
    conn = _conn(existing)
    assert keypair.ensure_keypair(conn, 'k', key_file).action == 'unchanged'
    conn.compute.create_keypair.assert_not_called()


def test_different_key_needs_replace(key_file):
    existing = types.SimpleNamespace(public_key=OTHER, fingerprint='cc')
    conn = _conn(existing)
    with pytest.raises(testenv.TestEnvError, match='different public key'):
        keypair.ensure_keypair(conn, 'k', key_file)
    conn.compute.delete_keypair.assert_not_called()
    dry = keypair.ensure_keypair(conn, 'k', key_file, replace=True,
                                 dry_run=True)
    assert dry.action == 'would-replace'
    conn.compute.delete_keypair.assert_not_called()
    change = keypair.ensure_keypair(conn, 'k', key_file, replace=True)
    assert change.action == 'replaced'
    conn.compute.delete_keypair.assert_called_once_with(
        existing, ignore_missing=True)
