"""trovestack instance up/down against the API-only local cloud: what
needs no compute (Trove can not handle an instance on a cloud without
neutron, so none is created here; the compute cloud's lifecycle test runs
the same library to ACTIVE and back)."""

import json

from tests.helpers import run


def _args(local_cloud):
    return dict(env=local_cloud.env(), check=False)


def test_down_of_an_absent_instance_does_nothing(local_cloud):
    result = run('trovestack', 'instance', 'down', 'it-absent', '-f',
                 'json', '--os-cloud', local_cloud.admin_cloud,
                 **_args(local_cloud))
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert (shown['Name'], shown['Action']) == ('it-absent', 'unchanged')


def test_up_with_an_unregistered_datastore_is_one_line(local_cloud, trove):
    before = [instance.id for instance in trove.instances.list()]
    result = run('trovestack', 'instance', 'up', 'it-demo', '--datastore',
                 'it-nosuch:1', '--os-cloud', local_cloud.admin_cloud,
                 **_args(local_cloud))
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "'it-nosuch' is not registered" in lines[0] or \
        'no datastore is registered' in lines[0]
    assert [instance.id for instance in trove.instances.list()] == before


def test_up_with_a_bad_datastore_spelling_is_refused(local_cloud):
    result = run('trovestack', 'instance', 'up', '--datastore', ':8.4',
                 '--os-cloud', local_cloud.admin_cloud, **_args(local_cloud))
    assert result.returncode == 2
    assert "datastore ':8.4' has no name" in result.stderr.splitlines()[-1]
