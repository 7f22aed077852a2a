"""The cliff commands: argument parsing and wiring to the library."""

import types
from unittest import mock

import pytest

from tests.unit.testenv import fakes
from trovestack.commands import testenv as commands
from trovestack.common.errors import UserError
from trovestack.testenv import flavors


def _command(cls):
    return cls(mock.Mock(), None)


def _parse(cls, arglist):
    return _command(cls).get_parser('trovestack').parse_args(arglist)


@pytest.fixture
def conn():
    conn = fakes.connection()
    conn.compute.flavors.return_value = []
    with mock.patch.object(commands.connection, 'connect_from_args',
                           return_value=conn):
        yield conn


class TestCreateFlavors:
    def test_parser(self):
        args = _parse(commands.CreateFlavors,
                      ['--os-cloud', 'c', '--replace', '--dry-run',
                       '--flavor-set', 'tempest'])
        assert (args.os_cloud, args.replace, args.dry_run, args.flavor_set) \
            == ('c', True, True, 'tempest')
        assert _parse(commands.CreateFlavors, []).flavor_set == 'all'

    def test_bad_flavor_set(self):
        with pytest.raises(SystemExit):
            _parse(commands.CreateFlavors, ['--flavor-set', 'big'])

    def test_take_action_lists_actions(self, conn):
        command = _command(commands.CreateFlavors)
        args = _parse(commands.CreateFlavors,
                      ['--flavor-set', 'tempest', '--dry-run'])
        headers, rows = command.take_action(args)
        assert headers[-1] == 'Action'
        assert rows[2] == ('d3', 'ds2G', 2048, 10, 2, 0, 'would-create')
        conn.compute.create_flavor.assert_not_called()

    def test_conflict_is_a_command_error(self, conn):
        spec = flavors.flavor_specs('tempest')[0]
        conn.compute.flavors.return_value = [fakes.from_spec(spec, ram=1)]
        command = _command(commands.CreateFlavors)
        with pytest.raises(UserError, match='--replace'):
            command.take_action(_parse(commands.CreateFlavors, []))


class TestWriteTestConfig:
    def test_tempest_conf_is_required(self):
        with pytest.raises(SystemExit):
            _parse(commands.WriteTestConfig, [])

    def test_datastore_argument(self):
        args = _parse(commands.WriteTestConfig,
                      ['--tempest-conf', 't.conf', '--datastore', 'mysql:8.4',
                       '--datastore', 'redis'])
        assert args.datastore == [('mysql', '8.4'), ('redis', None)]
        with pytest.raises(SystemExit):
            _parse(commands.WriteTestConfig,
                   ['--tempest-conf', 't', '--datastore', ':1'])

    def test_missing_directory_fails_before_any_call(self, conn, tmp_path):
        args = _parse(commands.WriteTestConfig,
                      ['--tempest-conf', str(tmp_path / 'x' / 't.conf')])
        with pytest.raises(UserError, match='does not exist'):
            _command(commands.WriteTestConfig).take_action(args)

    def test_writes_tempest_conf(self, conn, tmp_path):
        conn.compute.flavors.return_value = [
            types.SimpleNamespace(id='d3', name='ds2G'),
            types.SimpleNamespace(id='d4', name='ds4G')]
        choice = commands.datastores.DatastoreChoice('mysql', 'i', '8.4', 'v')
        path = tmp_path / 'tempest.conf'
        args = _parse(commands.WriteTestConfig, ['--tempest-conf', str(path)])
        with mock.patch.object(commands.connection, 'trove_client'), \
                mock.patch.object(commands.datastores, 'choose',
                                  return_value=[choice]):
            headers, rows = _command(commands.WriteTestConfig).take_action(
                args)
        assert headers == commands.CHANGE_HEADERS
        assert ('tempest.conf', '[database] default_datastore_versions',
                'created', 'mysql:8.4') in rows
        assert 'flavor_id = d3' in path.read_text()


class TestInitTestEnvironment:
    def test_parser_defaults(self):
        args = _parse(commands.InitTestEnvironment, [])
        assert (args.public_key, args.keypair_name, args.security_group,
                args.service_project, args.test_project, args.tempest_conf) \
            == (None, 'trove-mgmt', 'trove-mgmt', 'service', 'demo', None)

    def test_quota_argument(self):
        args = _parse(commands.InitTestEnvironment,
                      ['--quota', 'compute.cores=8'])
        assert args.quota == [(('compute', 'cores'), 8)]
        with pytest.raises(SystemExit):
            _parse(commands.InitTestEnvironment, ['--quota', 'cores'])

    def test_needs_admin(self, conn):
        conn.session.auth.get_access.return_value.role_names = ['member']
        with pytest.raises(UserError, match='admin role'):
            _command(commands.InitTestEnvironment).take_action(
                _parse(commands.InitTestEnvironment, []))
        conn.compute.flavors.assert_not_called()

    def test_bad_key_fails_before_any_change(self, conn, tmp_path):
        key = tmp_path / 'id'
        key.write_text('-----BEGIN OPENSSH PRIVATE KEY-----\n')
        conn.session.auth.get_access.return_value.role_names = ['admin']
        args = _parse(commands.InitTestEnvironment,
                      ['--public-key', str(key)])
        with mock.patch.object(commands.connection, 'trove_client'), \
                mock.patch.object(commands.quotas, 'ensure_quotas',
                                  return_value=[]):
            with pytest.raises(UserError,
                               match='is a private key'):
                _command(commands.InitTestEnvironment).take_action(args)
        conn.compute.create_flavor.assert_not_called()
