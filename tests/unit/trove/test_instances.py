"""trovestack.trove.instances: one Trove instance by name, with stand-in
clients."""

import types

import pytest

from tests.unit.testenv import fakes
from trovestack.common import results
from trovestack.trove import instances


class NotFound(Exception):
    http_status = 404


class BadRequest(Exception):
    http_status = 400


class ServerError(Exception):
    http_status = 500


def _raising(error):
    def call(*args, **kwargs):
        raise error
    return call


class FakeInstances:
    """Trove's instances API over a dict; each instance walks through the
    statuses it is given, one per get()."""

    def __init__(self):
        self.items = {}
        self.statuses = {}
        self.calls = []

    def add(self, name, statuses, *, fault=None, datastore=('mariadb',
                                                             '11.8')):
        instance_id = f'id-{len(self.items) + 1}'
        self.items[instance_id] = types.SimpleNamespace(
            id=instance_id, name=name, fault=fault,
            server_id=f'server-{instance_id}',
            datastore={'type': datastore[0], 'version': datastore[1]},
            addresses=[{'address': '10.0.0.5', 'type': 'private'}])
        _show(self.items[instance_id], statuses[0])
        self.statuses[instance_id] = list(statuses)
        return self.items[instance_id]

    def list(self, marker=None):
        # Two pages, to follow the marker.
        items = sorted(self.items.values(), key=lambda item: item.id)
        if marker is None:
            return Page(items[:1], items[0].id if len(items) > 1 else None)
        return Page(items[1:], None)

    def get(self, instance_id):
        if instance_id not in self.items:
            raise NotFound(instance_id)
        instance = self.items[instance_id]
        statuses = self.statuses[instance_id]
        _show(instance, statuses.pop(0) if len(statuses) > 1
              else statuses[0])
        return instance

    def create(self, name, flavor_id, **kwargs):
        self.calls.append(('create', name, flavor_id, kwargs))
        return self.add(name, ['BUILD', 'BUILD', 'ACTIVE'])

    def reset_status(self, instance_id):
        self.calls.append(('reset_status', instance_id))

    def delete(self, instance_id):
        self.calls.append(('delete', instance_id))
        del self.items[instance_id]


def _show(instance, shown):
    """'ACTIVE/ERROR': status ACTIVE, operating_status ERROR; a plain
    status comes without operating_status (as from an older Trove)."""
    instance.status, _, database = shown.partition('/')
    if database:
        instance.operating_status = database
    else:
        vars(instance).pop('operating_status', None)


class Page(list):
    """troveclient's paginated list: items and the next page's marker."""

    def __init__(self, items, next_marker):
        super().__init__(items)
        self.next = next_marker


def _version(name, version_id):
    return types.SimpleNamespace(name=name, id=version_id, version=name,
                                 image='img')


class FakeTrove:
    def __init__(self, catalog=None):
        catalog = catalog or {'mariadb': ('v1', [_version('11.8', 'v1')])}
        self.instances = FakeInstances()
        stores = [types.SimpleNamespace(name=name, id=f'ds-{name}',
                                        default_version=default)
                  for name, (default, _) in catalog.items()]
        self.datastores = types.SimpleNamespace(list=lambda: stores)
        self.datastore_versions = types.SimpleNamespace(
            list=lambda ds_id: catalog[ds_id[3:]][1])


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


@pytest.fixture
def clock(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(instances, '_now', clock)
    monkeypatch.setattr(instances, '_sleep', clock.sleep)
    return clock


@pytest.fixture
def trove(monkeypatch):
    trove = FakeTrove()
    monkeypatch.setattr(instances.connection, 'trove_client',
                        lambda conn: trove)
    return trove


@pytest.fixture
def conn():
    conn = fakes.connection(services=('compute', 'database', 'network'))
    conn.compute.find_flavor.return_value = types.SimpleNamespace(id='d3')
    conn.network.find_network.return_value = types.SimpleNamespace(
        id='net-private')
    conn.network.ports.return_value = [types.SimpleNamespace(id='port-1')]
    conn.network.find_port.return_value = None
    conn.compute.find_server.return_value = None
    conn.compute.get_server.return_value = types.SimpleNamespace(
        id='server-id-1', status='ACTIVE', fault=None)
    conn.compute.get_server_console_output.return_value = {
        'output': 'login: guest console says hello'}
    return conn


def test_found_active_is_returned_without_a_create(conn, trove, clock):
    trove.instances.add('other', ['ACTIVE'])
    trove.instances.add('demo', ['ACTIVE'])
    lines = []
    result = instances.ensure_instance(conn, 'demo', progress=lines.append)
    assert not [call for call in trove.instances.calls
                if call[0] == 'create']
    assert (result.name, result.id, result.status, result.created) == (
        'demo', 'id-2', 'ACTIVE', False)
    assert (result.datastore, result.version) == ('mariadb', '11.8')
    assert result.addresses == ['10.0.0.5']
    assert list(result.timeline) == ['found', 'status ACTIVE']
    assert lines[-1].startswith('instance demo: status ACTIVE at ')


def test_absent_is_created_with_the_defaults(conn, trove, clock):
    result = instances.ensure_instance(conn, 'demo', volume_size=1)
    [create] = [call for call in trove.instances.calls
                if call[0] == 'create']
    assert create == ('create', 'demo', 'd3', {
        'datastore': 'mariadb', 'datastore_version': '11.8',
        'nics': [{'net-id': 'net-private'}], 'volume': {'size': 1}})
    conn.compute.find_flavor.assert_called_with('d3', ignore_missing=True)
    conn.network.find_network.assert_called_with('private')
    assert result.created and result.status == 'ACTIVE'
    assert list(result.timeline) == ['created', 'status BUILD',
                                     'status ACTIVE']


def test_explicit_choices_and_no_volume(conn, trove, clock):
    instances.ensure_instance(conn, 'demo', datastore='mariadb',
                              version='11.8', flavor='big', nics=['net2'],
                              volume_size=None)
    [create] = [call for call in trove.instances.calls
                if call[0] == 'create']
    assert create[3]['volume'] is None
    conn.compute.find_flavor.assert_called_with('big', ignore_missing=True)
    conn.network.find_network.assert_called_with('net2')


def test_several_datastores_leave_the_choice_to_trove(conn, monkeypatch,
                                                      clock):
    trove = FakeTrove({'mariadb': ('v1', [_version('11.8', 'v1')]),
                       'postgresql': ('v2', [_version('17', 'v2')])})
    monkeypatch.setattr(instances.connection, 'trove_client',
                        lambda conn: trove)
    instances.ensure_instance(conn, 'demo')
    [create] = trove.instances.calls
    assert (create[3]['datastore'], create[3]['datastore_version']) == (
        None, None)


def test_unknown_datastore_is_one_line_before_any_create(conn, trove):
    with pytest.raises(instances.UserError, match="'mysql' is not "
                       'registered'):
        instances.ensure_instance(conn, 'demo', datastore='mysql')
    assert trove.instances.calls == []


def test_missing_flavor_says_how_to_make_it(conn, trove):
    conn.compute.find_flavor.return_value = None
    with pytest.raises(instances.InstanceError, match='trovestack flavors'):
        instances.ensure_instance(conn, 'demo')


def test_building_is_waited_for_with_heartbeats(conn, trove, clock):
    trove.instances.add('demo', ['BUILD'] * 20 + ['ACTIVE'])
    lines = []
    result = instances.ensure_instance(conn, 'demo', progress=lines.append)
    assert not result.created and result.status == 'ACTIVE'
    assert trove.instances.calls == []
    heartbeats = [line for line in lines if 'still BUILD' in line]
    # ~200 s in BUILD: a heartbeat every 60 s, not one per poll.
    assert 2 <= len(heartbeats) <= 4, lines


def test_active_without_a_healthy_database_is_waited_for(conn, trove,
                                                       clock):
    """After a cloud restart: ACTIVE in Trove, its guest booting again."""
    trove.instances.add('demo', ['ACTIVE/ERROR'] * 3 + ['ACTIVE/HEALTHY'])
    lines = []
    result = instances.ensure_instance(conn, 'demo', progress=lines.append)
    assert result.status == 'ACTIVE' and not result.created
    assert list(result.timeline)[1:] == ['status ACTIVE, database ERROR',
                                         'status ACTIVE'], result.timeline


def test_error_names_the_fault_and_the_down_command(conn, trove, clock):
    trove.instances.add('demo', ['ERROR'], fault={
        'message': 'No valid host was found.', 'details': 'trace...'})
    with pytest.raises(instances.InstanceError) as caught:
        instances.ensure_instance(conn, 'demo')
    message = str(caught.value)
    assert 'instance demo' in message and 'ERROR' in message
    assert 'No valid host was found.' in message
    assert '"trovestack instance down demo"' in message
    assert '\n' not in message
    assert 'trace...' in caught.value.details
    assert [call[0] for call in trove.instances.calls] == []


def test_going_to_error_while_waiting_fails(conn, trove, clock):
    trove.instances.add('demo', ['BUILD', 'ERROR'])
    with pytest.raises(instances.InstanceError,
                       match='stopped at status ERROR: instance went to '
                             'ERROR'):
        instances.ensure_instance(conn, 'demo')


def test_another_datastore_of_that_name_is_refused(conn, trove, clock):
    trove.instances.add('demo', ['ACTIVE'], datastore=('postgresql', '17'))
    with pytest.raises(instances.InstanceError,
                       match='exists as postgresql:17, not mariadb'):
        instances.ensure_instance(conn, 'demo', datastore='mariadb')


def test_timeout_fails_with_diagnostics(conn, trove, clock, tmp_path):
    trove.instances.add('demo', ['BUILD'])
    log = tmp_path / 'trove-taskmanager.log'
    log.write_text('taskmanager: waiting for the guest\n')
    console = tmp_path / 'server-id-1' / 'console.log'
    console.parent.mkdir()
    console.write_text('cloud-init finished\n')
    evidence = instances.Evidence(logs=(str(log),),
                                  instances_dir=str(tmp_path))
    with pytest.raises(instances.InstanceError) as caught:
        instances.ensure_instance(conn, 'demo', timeout=100,
                                  evidence=evidence)
    assert 'stopped at status BUILD: ACTIVE not within 100 s' in str(
        caught.value)
    details = caught.value.details
    assert 'instance id-1 status BUILD' in details
    assert 'guest console says hello' in details
    assert 'waiting for the guest' in details
    assert 'cloud-init finished' in details


def test_refused_create_is_one_line(conn, trove):
    trove.instances.create = _raising(
        BadRequest('Volume size was not specified. (HTTP 400)'))
    with pytest.raises(instances.InstanceError,
                       match='Trove refused to create it: Volume size'):
        instances.ensure_instance(conn, 'demo')


def test_api_error_while_waiting_fails_with_diagnostics(conn, trove, clock):
    trove.instances.add('demo', ['BUILD'])
    trove.instances.get = _raising(
        ServerError('Internal Server Error (HTTP 500)'))
    with pytest.raises(instances.InstanceError) as caught:
        instances.ensure_instance(conn, 'demo')
    assert 'stopped at found: ACTIVE: the API answered Internal Server ' \
        'Error' in str(caught.value)
    assert 'instance id-1: Internal Server Error' in caught.value.details


def _timing_out_then(trove, polls):
    """instances.get times out ``polls`` times, then answers."""
    from keystoneauth1 import exceptions as ks_exc

    answer = trove.instances.get
    left = [polls]

    def get(instance_id):
        if left[0] > 0:
            left[0] -= 1
            raise ks_exc.ConnectTimeout(
                'Request to http://127.0.0.1:1/v1.0/p/instances/id-1 '
                'timed out')
        return answer(instance_id)
    trove.instances.get = get


def test_guest_not_answering_is_waited_for(conn, trove, clock):
    # Trove's API waits on the guest for an ACTIVE instance's volume use:
    # its guest boots again after a cloud restart, and show times out.
    trove.instances.add('demo', ['ACTIVE/HEALTHY'])
    _timing_out_then(trove, 5)
    lines = []
    result = instances.ensure_instance(conn, 'demo', progress=lines.append)
    assert result.status == 'ACTIVE'
    assert list(result.timeline)[1:] == [
        'status ACTIVE, guest not answering', 'status ACTIVE'], lines


def test_guest_silent_too_long_fails_with_diagnostics(conn, trove, clock):
    trove.instances.add('demo', ['ACTIVE'])
    _timing_out_then(trove, 10 ** 6)
    with pytest.raises(instances.InstanceError) as caught:
        instances.ensure_instance(conn, 'demo')
    line = str(caught.value)
    assert ('stopped at status ACTIVE, guest not answering: its guest has '
            'not answered for 900 s: Request to') in line, line
    assert '\n' not in line
    assert 'instance id-1: Request to' in caught.value.details


def test_no_answer_at_all_fails_at_once(conn, trove, clock):
    from keystoneauth1 import exceptions as ks_exc

    trove.instances.add('demo', ['ACTIVE'])
    trove.instances.get = _raising(ks_exc.ConnectFailure(
        'Unable to establish connection to http://127.0.0.1:1'))
    with pytest.raises(instances.InstanceError) as caught:
        instances.ensure_instance(conn, 'demo')
    assert 'stopped at found: ACTIVE: no answer from the API: Unable' \
        in str(caught.value)


def test_two_of_a_name_are_an_error(conn, trove):
    trove.instances.add('demo', ['ACTIVE'])
    trove.instances.add('demo', ['ACTIVE'])
    with pytest.raises(instances.InstanceError, match='2 instances'):
        instances.ensure_instance(conn, 'demo')


def test_down_absent_does_nothing(conn, trove):
    row = instances.delete_instance(conn, 'demo')
    assert (row.name, row.action) == ('demo', results.UNCHANGED)
    assert trove.instances.calls == []


def test_down_resets_a_stuck_instance_and_waits(conn, trove, clock):
    trove.instances.add('demo', ['BUILD'])
    row = instances.delete_instance(conn, 'demo')
    assert trove.instances.calls == [('reset_status', 'id-1'),
                                     ('delete', 'id-1')]
    assert (row.action, row.id) == (results.DELETED, 'id-1')
    assert '1 port(s) gone' in row.detail
    conn.compute.find_server.assert_called_with('server-id-1',
                                                ignore_missing=True)


def test_down_active_needs_no_reset(conn, trove, clock):
    trove.instances.add('demo', ['ACTIVE'])
    instances.delete_instance(conn, 'demo')
    assert trove.instances.calls == [('delete', 'id-1')]


def test_down_finds_the_server_trove_does_not_show(conn, trove, clock):
    from keystoneauth1 import exceptions as ks_exc

    found = trove.instances.add('demo', ['ACTIVE'])
    del found.server_id  # the list shows none; the show times out
    real_get = trove.instances.get
    answers = [ks_exc.ConnectTimeout('timed out')]

    def get(instance_id):
        if answers:
            raise answers.pop()
        return real_get(instance_id)
    trove.instances.get = get
    conn.compute.servers.return_value = [types.SimpleNamespace(id='srv-9')]
    instances.delete_instance(conn, 'demo')
    conn.compute.servers.assert_called_with(all_projects=True,
                                            name='^demo$')
    conn.network.ports.assert_called_with(device_id='srv-9')
    conn.compute.find_server.assert_called_with('srv-9', ignore_missing=True)


def test_down_refused_points_at_force_delete(conn, trove, clock):
    trove.instances.add('demo', ['ACTIVE'])
    trove.instances.delete = _raising(
        ServerError('Internal Server Error (HTTP 500)'))
    with pytest.raises(instances.InstanceError) as caught:
        instances.delete_instance(conn, 'demo')
    message = str(caught.value)
    assert 'stopped at delete: Trove refused the delete' in message
    assert 'force-delete id-1' in message
    assert 'trovestack instance down' not in message


def test_restore_names_a_completed_backup():
    from unittest import mock

    trove = mock.Mock()
    backups = [types.SimpleNamespace(id='b-1', name='full',
                                     status='COMPLETED'),
               types.SimpleNamespace(id='b-2', name='new', status='NEW')]
    trove.backups.list.return_value = backups
    assert instances._backup_id(trove, 'full') == 'b-1'
    assert instances._backup_id(trove, 'b-1') == 'b-1'
    with pytest.raises(instances.InstanceError, match='is NEW, not'):
        instances._backup_id(trove, 'new')
    with pytest.raises(instances.InstanceError,
                       match="0 Trove backups are named 'gone'"):
        instances._backup_id(trove, 'gone')
