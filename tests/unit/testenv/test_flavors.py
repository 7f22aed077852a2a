
from unittest import mock

import pytest
from openstack import exceptions as sdk_exc

from tests.unit.testenv import fakes
from trovestack import testenv
from trovestack.common import connection
from trovestack.common import results
from trovestack.testenv import flavors


def _conn(existing=()):
    conn = fakes.connection()
    conn.compute.flavors.return_value = list(existing)
    return conn


def test_flavor_sets():
    tempest = flavors.flavor_specs('tempest')
    assert [(s.id, s.name) for s in tempest] == [
        ('d1', 'ds512M'), ('d2', 'ds1G'), ('d3', 'ds2G'), ('d4', 'ds4G')]
    everything = flavors.flavor_specs()
    assert len({s.id for s in everything}) == len(everything)
    assert len({s.name for s in everything}) == len(everything)
    by_name = {s.name: s for s in everything}
    small = by_name['test.small-7']
    assert (small.id, small.ram, small.vcpus, small.ephemeral) == \
        ('16', 1024, 1, 0)
    resize = by_name['test.eph.small-7.resize']
    assert (resize.id, resize.ram, resize.vcpus, resize.ephemeral) == \
        ('16er', 1040, 2, 1)
    # Fault flavors have no resize variant.
    assert 'test.fault_1-1.resize' not in by_name
    assert by_name['test.eph.fault_2-7'].id == '31e'


def test_unknown_flavor_set():
    with pytest.raises(testenv.TestEnvError, match='unknown flavor set'):
        flavors.flavor_specs('huge')


def test_creates_missing_with_extra_specs():
    conn = _conn()
    specs = flavors.flavor_specs('tempest')
    results = flavors.ensure_flavors(conn, specs)
    assert [r.action for r in results] == ['created'] * 4
    conn.compute.create_flavor.assert_any_call(
        name='ds2G', id='d3', ram=2048, disk=10, vcpus=2, ephemeral=0,
        is_public=True)
    conn.compute.create_flavor_extra_specs.assert_any_call(
        conn.compute.create_flavor.return_value, {'hw_rng:allowed': 'True'})
    conn.compute.flavors.assert_called_once_with(
        details=True, get_extra_specs=True, is_public=None)


def test_same_spec_is_unchanged():
    specs = flavors.flavor_specs('tempest')
    conn = _conn([fakes.from_spec(s) for s in specs])
    results = flavors.ensure_flavors(conn, specs)
    assert {r.action for r in results} == {'unchanged'}
    conn.compute.create_flavor.assert_not_called()


@pytest.mark.parametrize('clash, message', [
    (dict(ram=999), 'ram 999!=2048'),
    (dict(name='other'), 'name other!=ds2G'),
    (dict(flavor_id='x9'), 'id x9!=d3'),
    (dict(extra_specs={}), 'hw_rng:allowed None!=True'),
])
def test_conflict_changes_nothing(clash, message):
    specs = flavors.flavor_specs('tempest')
    existing = [fakes.from_spec(specs[2], **clash)]
    conn = _conn(existing)
    with pytest.raises(testenv.TestEnvError) as error:
        flavors.ensure_flavors(conn, specs)
    text = str(error.value)
    assert message in text and '--replace' in text and '\n' not in text
    conn.compute.create_flavor.assert_not_called()
    conn.compute.delete_flavor.assert_not_called()


def test_replace_deletes_then_recreates():
    specs = flavors.flavor_specs('tempest')
    wrong = fakes.from_spec(specs[2], ram=999)
    conn = _conn([wrong])
    results = flavors.ensure_flavors(conn, specs, replace=True)
    assert [r.action for r in results] == [
        'created', 'created', 'replaced', 'created']
    conn.compute.delete_flavor.assert_called_once_with(
        wrong.id, ignore_missing=True)


def test_dry_run_changes_nothing():
    specs = flavors.flavor_specs('tempest')
    conn = _conn([fakes.from_spec(specs[0]),
                  fakes.from_spec(specs[1], vcpus=8)])
    results = flavors.ensure_flavors(conn, specs, replace=True, dry_run=True)
    assert [r.action for r in results] == [
        'unchanged', 'would-replace', 'would-create', 'would-create']
    conn.compute.create_flavor.assert_not_called()
    conn.compute.delete_flavor.assert_not_called()


def test_failed_extra_specs_remove_the_flavor():
    conn = _conn()
    conn.compute.create_flavor_extra_specs.side_effect = \
        sdk_exc.HttpException('boom')
    with pytest.raises(sdk_exc.HttpException):
        flavors.ensure_flavors(conn, flavors.flavor_specs('tempest')[:1])
    conn.compute.delete_flavor.assert_called_once_with(
        conn.compute.create_flavor.return_value, ignore_missing=True)


def test_result_as_row():
    spec = flavors.flavor_specs('tempest')[0]
    change = flavors.FlavorResult(spec, 'created').to_row()
    assert change == results.Row(
        'flavor', 'ds512M', 'created',
        'id=d1 ram=512 disk=5 vcpus=1 ephemeral=0')


def test_extra_specs_come_with_the_list_from_microversion_2_61():
    conn = _conn()
    conn.compute.get_endpoint_data.return_value = mock.Mock(
        min_microversion='2.1', max_microversion='2.96')
    conn.compute.default_microversion = None
    flavors.ensure_flavors(conn, flavors.flavor_specs('tempest'))
    conn.compute.flavors.assert_called_once_with(
        details=True, get_extra_specs=False, is_public=None)


class _Compute:
    """A compute adapter answering flavor lists from (status, body)."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.sent = []

    def get(self, url, params=None, microversion=None, **kwargs):
        self.sent.append((url, params, microversion))
        status, body = self.answers.pop(0)
        return mock.Mock(status_code=status, json=lambda: body)


def _rest_conn(compute):
    """A trovestack Connection whose compute REST adapter is ``compute``
    and whose openstacksdk Connection is a mock (to see what it is asked)."""
    conn = connection.Connection.__new__(connection.Connection)
    conn._rest_apis = {'compute': compute}
    conn._sdk = fakes.connection()
    return conn


def _listed_flavor(spec):
    return {'id': spec.id, 'name': spec.name, 'ram': spec.ram,
            'disk': spec.disk, 'vcpus': spec.vcpus,
            'OS-FLV-EXT-DATA:ephemeral': spec.ephemeral,
            'extra_specs': dict(spec.extra_specs)}


def test_nothing_to_change_is_plain_list_pages_not_the_sdk():
    specs = flavors.flavor_specs('tempest')
    rows = [_listed_flavor(spec) for spec in specs]
    compute = _Compute(
        (200, {'flavors': rows[:2], 'flavors_links': [
            {'rel': 'next', 'href': 'http://nova/flavors/detail?marker=d2'}]}),
        (200, {'flavors': rows[2:]}))
    conn = _rest_conn(compute)
    results = flavors.ensure_flavors(conn, specs)
    assert [r.action for r in results] == ['unchanged'] * len(specs)
    assert compute.sent == [
        ('/flavors/detail', {'is_public': 'None'}, '2.61'),
        ('http://nova/flavors/detail?marker=d2', None, '2.61')]
    assert conn._sdk.method_calls == []


def test_plain_list_finds_differences_and_the_sdk_changes():
    specs = flavors.flavor_specs('tempest')
    wrong = _listed_flavor(specs[0]) | {'extra_specs': {}}
    conn = _rest_conn(_Compute((200, {'flavors': [wrong]})))
    results = flavors.ensure_flavors(conn, specs[:1], replace=True)
    assert [r.action for r in results] == ['replaced']
    conn._sdk.compute.delete_flavor.assert_called_once_with(
        'd1', ignore_missing=True)
    conn._sdk.compute.create_flavor.assert_called_once()


def test_older_compute_api_lists_through_the_sdk():
    conn = _rest_conn(_Compute((406, {}), (406, {})))
    conn._sdk.compute.flavors.return_value = []
    assert flavors.listed(conn, details=True) is None
    flavors.ensure_flavors(conn, flavors.flavor_specs('tempest'))
    conn._sdk.compute.flavors.assert_called_once()


def test_ids_and_names_one_plain_list_else_the_sdk():
    specs = flavors.flavor_specs('tempest')
    compute = _Compute((200, {'flavors': [
        {'id': spec.id, 'name': spec.name} for spec in specs]}))
    found = flavors.existing(_rest_conn(compute), details=False)
    assert [(f.id, f.name) for f in found] == [(s.id, s.name) for s in specs]
    assert compute.sent == [('/flavors', {'is_public': 'None'}, '2.61')]

    older = _rest_conn(_Compute((406, {})))
    older._sdk.compute.flavors.return_value = ['listed by the sdk']
    assert flavors.existing(older, details=False) == ['listed by the sdk']
    older._sdk.compute.flavors.assert_called_once_with(
        details=False, is_public=None)
