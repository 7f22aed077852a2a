"""trovestack.trove.database_client: which address, user, database and password
source a connection takes, and the command line it builds."""

import types
from unittest import mock

import pytest

from trovestack.common.errors import UserError
from trovestack.trove import database_client as client

NS = 'trovestack-test'


def _instance(datastore='mariadb', status='ACTIVE', floating=False):
    addresses = [{'address': '10.224.0.5', 'type': 'private',
                  'network': 'net-1'}]
    if floating:
        addresses.append({'address': '10.223.0.40', 'type': 'public'})
    return types.SimpleNamespace(
        id='id-1', name='demo', status=status, addresses=addresses,
        datastore={'type': datastore, 'version': '11.8'})


def _user(name, *databases):
    return types.SimpleNamespace(
        name=name, host='%', databases=[{'name': db} for db in databases])


def _trove(instance, users=()):
    trove = mock.Mock(name='trove')
    trove.instances.list.return_value = [instance]
    trove.users.list.return_value = list(users)
    return trove


@pytest.fixture(autouse=True)
def installed():
    with mock.patch.object(client.shutil, 'which', return_value='/bin/x'):
        yield


def _session(trove, **kwargs):
    kwargs.setdefault('environ', {client.PASSWORD_ENV: 's3cret'})
    return client.session(trove, NS, 'demo', **kwargs)


def test_mariadb_defaults_take_the_only_user_and_database():
    opened = _session(_trove(_instance(), [_user('alice', 'shop')]))
    assert opened.argv == [
        'ip', 'netns', 'exec', NS, 'mariadb', '--host=10.224.0.5',
        '--user=alice', '--connect-timeout=10', '--database=shop']
    assert opened.env == {'MYSQL_PWD': 's3cret'}
    assert (opened.kind, opened.database) == ('fixed', 'shop')
    assert 's3cret' not in opened.describe() + repr(opened)
    assert opened.describe() == (
        'mariadb to alice@10.224.0.5 (fixed address of demo) database shop')


def test_floating_ip_wins_and_pass_through_arguments_follow():
    opened = _session(_trove(_instance(floating=True)), user='bob',
                      database='db', extra=['-N', '-e', 'SELECT 1'])
    assert opened.argv[4:] == [
        'mariadb', '--host=10.223.0.40', '--user=bob',
        '--connect-timeout=10', '--database=db', '-N', '-e', 'SELECT 1']
    assert opened.kind == 'floating'
    fixed = _session(_trove(_instance(floating=True)), user='bob',
                     database='db', address_kind='fixed')
    assert (fixed.address, fixed.kind) == ('10.224.0.5', 'fixed')


def test_postgresql_uses_psql_with_its_environment():
    opened = _session(_trove(_instance('postgresql'), [_user('alice')]))
    assert opened.argv[4:] == ['psql', '--host=10.224.0.5',
                               '--username=alice', '--dbname=postgres']
    assert opened.env == {'PGPASSWORD': 's3cret', 'PGCONNECT_TIMEOUT': '10'}


def test_prompt_at_a_terminal_and_the_clients_own_variable():
    prompted = _session(_trove(_instance(), [_user('alice')]), environ={},
                        interactive=True)
    assert prompted.argv[-1] == '--password' and prompted.env == {}
    own = _session(_trove(_instance('postgresql'), [_user('alice')]),
                   environ={'PGPASSWORD': 'x'})
    assert '--password' not in own.argv
    assert own.env == {'PGCONNECT_TIMEOUT': '10'}


def test_password_file_first_line(tmp_path):
    path = tmp_path / 'pw'
    path.write_text('from-file\nignored\n')
    opened = _session(_trove(_instance(), [_user('alice')]),
                      password_file=str(path))
    assert opened.env == {'MYSQL_PWD': 'from-file'}
    path.write_text('')
    with pytest.raises(UserError, match='is empty'):
        _session(_trove(_instance(), [_user('alice')]),
                 password_file=str(path))
    with pytest.raises(UserError, match='can not read the password file'):
        _session(_trove(_instance(), [_user('alice')]),
                 password_file=str(tmp_path / 'missing'))


@pytest.mark.parametrize('kwargs, instance, users, message', [
    ({}, _instance(), [], 'has no database user: create one'),
    ({}, _instance(), [_user('a'), _user('b')],
     'has 2 users \\(a, b\\): name one with --user'),
    ({'address_kind': 'floating'}, _instance(), [_user('a')],
     'has no floating IP: make it public'),
    ({}, _instance(status='BUILD'), [_user('a')], 'is BUILD, not ACTIVE'),
    ({}, _instance('redis'), [_user('a')], 'runs redis, which has no client'),
    ({'environ': {}}, _instance(), [_user('a')], 'no password: give'),
])
def test_what_is_missing_is_named(kwargs, instance, users, message):
    with pytest.raises(UserError, match=message):
        _session(_trove(instance, users), **kwargs)


def test_no_instance_and_no_client_program():
    trove = _trove(_instance())
    trove.instances.list.return_value = []
    with pytest.raises(UserError, match='no Trove instance named demo'):
        _session(trove)
    with mock.patch.object(client.shutil, 'which', return_value=None), \
            pytest.raises(UserError, match='apt-get install mariadb-client'):
        _session(_trove(_instance(), [_user('a')]))
