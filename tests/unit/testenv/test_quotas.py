import types

import pytest
from openstack import exceptions as sdk_exc

from tests.unit.testenv import fakes
from trovestack import testenv
from trovestack.testenv import quotas


def _quota_set(**values):
    return types.SimpleNamespace(to_dict=lambda: dict(values, id='x'))


def _setup(services=('compute', 'database', 'identity')):
    conn = fakes.connection(services)
    conn.identity.find_project.side_effect = \
        lambda name, ignore_missing: types.SimpleNamespace(id=f'id-{name}')
    conn.compute.get_quota_set.return_value = _quota_set(
        cores=20, instances=-1, ram=51200)
    trove = types.SimpleNamespace(quota=types.SimpleNamespace())
    trove.quota.show = lambda project: [
        types.SimpleNamespace(resource='instances', limit=10),
        types.SimpleNamespace(resource='volumes', limit=100),
        types.SimpleNamespace(resource='backups', limit=50)]
    trove.quota.updates = []
    trove.quota.update = lambda project, limits: trove.quota.updates.append(
        (project, limits))
    return conn, trove


def _http_error(message, status):
    error = sdk_exc.HttpException(message)
    error.status_code = status
    return error


def test_parse_quota_arg():
    assert quotas.parse_quota_arg('compute.cores=8') == (('compute', 'cores'),
                                                         8)
    assert quotas.parse_quota_arg('database.ram=-1')[1] == -1
    for bad in ('cores=8', 'compute.cores', 'compute.cores=x',
                'compute.cores=-2'):
        with pytest.raises(ValueError):
            quotas.parse_quota_arg(bad)


def test_wanted_overrides_and_unknown():
    wants = quotas.wanted({('compute', 'cores'): 4})
    assert next(w for w in wants if w.resource == 'cores').minimum == 4
    with pytest.raises(testenv.TestEnvError,
                       match='unknown quota compute.gpus'):
        quotas.wanted({('compute', 'gpus'): 1})


@pytest.mark.parametrize('current, minimum, enough', [
    (10, 5, True), (5, 10, False), (-1, 10, True), (10, -1, False),
    (-1, -1, True)])
def test_is_enough(current, minimum, enough):
    assert quotas.is_enough(current, minimum) is enough


def test_raises_only_what_is_below_and_skips_absent_services():
    conn, trove = _setup()
    changes = quotas.ensure_quotas(conn, trove, quotas.wanted())
    by_name = {c.name: c for c in changes}
    assert by_name['compute.cores@service'].action == 'raised'
    assert by_name['compute.instances@service'].action == 'unchanged'
    assert by_name['compute.ram@service'].action == 'unchanged'
    assert by_name['database.instances@demo'].action == 'raised'
    assert by_name['network'].action == 'skipped'
    assert by_name['block-storage'].detail == \
        'no block-storage endpoint in the catalog'
    conn.compute.update_quota_set.assert_called_once_with('id-service',
                                                          cores=60)
    assert trove.quota.updates == [('id-demo', {'instances': 55})]


def test_dry_run_reads_only():
    conn, trove = _setup()
    changes = quotas.ensure_quotas(conn, trove, quotas.wanted(), dry_run=True)
    assert 'would-raise' in {c.action for c in changes}
    conn.compute.update_quota_set.assert_not_called()
    assert trove.quota.updates == []


def test_broken_api_is_skipped_but_forbidden_is_an_error():
    conn, trove = _setup()
    conn.compute.get_quota_set.side_effect = _http_error('No cells', 500)
    changes = quotas.ensure_quotas(conn, trove, quotas.wanted())
    compute = next(c for c in changes if c.name == 'compute')
    assert compute.action == 'skipped'
    assert 'compute quota API unavailable' in compute.detail
    conn.compute.get_quota_set.side_effect = _http_error('Forbidden', 403)
    with pytest.raises(sdk_exc.HttpException):
        quotas.ensure_quotas(conn, trove, quotas.wanted())


def test_missing_project_fails_before_any_change():
    conn, trove = _setup()
    conn.identity.find_project.side_effect = None
    conn.identity.find_project.return_value = None
    with pytest.raises(testenv.TestEnvError,
                       match="project 'service' does not exist"):
        quotas.ensure_quotas(conn, trove, quotas.wanted())
    conn.compute.update_quota_set.assert_not_called()
