"""trovestack.common.tokencache: reuse, privacy, expiry, opt-out."""

import datetime
import json
import os

import pytest
from keystoneauth1 import access
from keystoneauth1 import fixture
from keystoneauth1.identity import generic

from trovestack.common import tokencache

PASSWORD = 'correct-horse-battery'


class _Keystone:
    """Stands in for Keystone: every authentication issues a new token."""

    def __init__(self, lifetime=3600):
        self.issued = []
        self.lifetime = lifetime

    def plugin(self, password=PASSWORD, auth_url='http://127.0.0.1:5000/v3'):
        auth = generic.Password(
            auth_url=auth_url, username='admin', password=password,
            project_name='admin', user_domain_name='Default',
            project_domain_name='Default')

        def get_auth_ref(session, **kwargs):
            token = f'token-{len(self.issued)}'
            self.issued.append(token)
            expires = datetime.datetime.now(datetime.timezone.utc) + \
                datetime.timedelta(seconds=self.lifetime)
            body = fixture.V3Token(expires=expires, project_name='admin')
            return access.create(body=body, auth_token=token)

        auth.get_auth_ref = get_auth_ref
        return auth


@pytest.fixture
def keystone():
    return _Keystone()


@pytest.fixture
def where(tmp_path):
    return tmp_path / 'tokens'


def _token(auth):
    return auth.get_access(None).auth_token


def test_a_second_run_reuses_the_token(keystone, where):
    first = keystone.plugin()
    assert not tokencache.attach(first, where)
    assert _token(first) == 'token-0'
    second = keystone.plugin()
    assert tokencache.attach(second, where)
    assert _token(second) == 'token-0'
    assert keystone.issued == ['token-0']


def test_entries_are_private_and_name_no_secret(keystone, where):
    auth = keystone.plugin()
    tokencache.attach(auth, where)
    _token(auth)
    assert where.stat().st_mode & 0o777 == 0o700
    names = sorted(p.name for p in where.iterdir())
    assert len(names) == 2 and 'key' in names
    for path in where.iterdir():
        assert path.stat().st_mode & 0o777 == 0o600
        assert PASSWORD not in path.name
        assert PASSWORD.encode() not in path.read_bytes()


def test_another_password_or_cloud_is_another_entry(keystone, where):
    auth = keystone.plugin()
    tokencache.attach(auth, where)
    _token(auth)
    for other in (keystone.plugin(password='other'),
                  keystone.plugin(auth_url='http://127.0.0.1:5001/v3')):
        assert not tokencache.attach(other, where)
        assert _token(other) != 'token-0'
    assert len(list(where.glob('*.json'))) == 3


def test_a_new_token_overwrites_the_entry(keystone, where):
    """A token Keystone rejects: keystoneauth invalidates the plugin and
    authenticates again; the next run gets the new token."""
    auth = keystone.plugin()
    tokencache.attach(auth, where)
    _token(auth)
    auth.invalidate()
    assert _token(auth) == 'token-1'
    later = keystone.plugin()
    assert tokencache.attach(later, where)
    assert _token(later) == 'token-1'


def test_a_token_near_expiry_is_not_used(where):
    keystone = _Keystone(lifetime=tokencache.MIN_REMAINING - 60)
    auth = keystone.plugin()
    tokencache.attach(auth, where)
    _token(auth)
    later = keystone.plugin()
    assert not tokencache.attach(later, where)
    assert _token(later) == 'token-1'


def test_a_damaged_entry_is_ignored_and_replaced(keystone, where):
    auth = keystone.plugin()
    tokencache.attach(auth, where)
    _token(auth)
    (entry,) = where.glob('*.json')
    entry.write_text('{"auth_token": ')
    later = keystone.plugin()
    assert not tokencache.attach(later, where)
    assert _token(later) == 'token-1'
    assert json.loads(entry.read_text())['auth_token'] == 'token-1'


def test_a_directory_others_can_use_is_not_used(keystone, where, caplog):
    where.mkdir(mode=0o755)
    where.chmod(0o755)
    auth = keystone.plugin()
    assert not tokencache.attach(auth, where)
    _token(auth)
    assert list(where.iterdir()) == []
    assert 'chmod 700' in caplog.text


def test_an_entry_others_can_read_is_not_used(keystone, where):
    auth = keystone.plugin()
    tokencache.attach(auth, where)
    _token(auth)
    (entry,) = where.glob('*.json')
    entry.chmod(0o644)
    assert not tokencache.attach(keystone.plugin(), where)


def test_the_key_is_made_once(keystone, where):
    auth = keystone.plugin()
    tokencache.attach(auth, where)
    key = (where / 'key').read_bytes()
    tokencache.attach(keystone.plugin(), where)
    assert (where / 'key').read_bytes() == key
    assert not [p for p in where.iterdir() if p.name.startswith('.')]


def test_stale_entries_are_removed(keystone, where):
    auth = keystone.plugin(password='old')
    tokencache.attach(auth, where)
    _token(auth)
    (old,) = where.glob('*.json')
    left_by_a_killed_run = where / '.entry.json.x1y2'
    left_by_a_killed_run.write_text('')
    past = old.stat().st_mtime - tokencache.MAX_AGE - 60
    for path in where.iterdir():
        os.utime(path, (past, past))
    auth = keystone.plugin()
    tokencache.attach(auth, where)
    _token(auth)
    (new,) = where.glob('*.json')
    assert sorted(p.name for p in where.iterdir()) == sorted(
        [new.name, 'key'])
    assert new != old


@pytest.mark.parametrize('value, on', [
    (None, True), ('1', True), ('0', False), ('off', False), ('No', False),
    ('false', False),
])
def test_switch(monkeypatch, value, on):
    if value is None:
        monkeypatch.delenv(tokencache.SWITCH, raising=False)
    else:
        monkeypatch.setenv(tokencache.SWITCH, value)
    assert tokencache.enabled() is on


def test_default_directory_follows_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path))
    assert tokencache.default_directory() == tmp_path / 'trovestack/tokens'


class _Answer:
    def __init__(self, status):
        self.status_code = status


class _Session:
    def __init__(self, status):
        self.status, self.asked = status, []

    def request(self, url, method, **kwargs):
        self.asked.append((url, method, kwargs['headers']))
        if isinstance(self.status, Exception):
            raise self.status
        return _Answer(self.status)


@pytest.mark.parametrize('status, valid', [
    (200, True), (404, False), (401, False), (OSError('down'), True)])
def test_still_valid_asks_keystone_about_the_token(keystone, status, valid):
    auth = keystone.plugin(auth_url='http://127.0.0.1/identity')
    auth.get_access(None)
    session = _Session(status)
    assert tokencache.still_valid(session, auth) is valid
    ((url, method, headers),) = session.asked
    assert (url, method) == ('http://127.0.0.1/identity/v3/auth/tokens',
                             'HEAD')
    assert headers == {'X-Auth-Token': 'token-0',
                       'X-Subject-Token': 'token-0'}


def test_still_valid_without_a_token_asks_nothing(keystone):
    session = _Session(200)
    assert tokencache.still_valid(session, keystone.plugin())
    assert session.asked == []
