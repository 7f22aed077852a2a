"""activate-trove-image against the real local Trove API."""

import pytest

from tests import load_image_support as support
from trovestack.common import connection


@pytest.fixture
def two_versions(local_cloud, tmp_path):
    """A datastore with versions 8.0 and 8.4, neither the default."""
    datastore = support.unique('mysql')
    ids = {}
    for version in ('8.0', '8.4'):
        image = support.make_raw_image(tmp_path / f'{version}.img')
        _, data = support.load(local_cloud, image, datastore, version,
                               '--manager', 'mysql')
        ids[version] = data['version_id']
    return datastore, ids


def _versions(trove, datastore):
    return {v.name: v for v in trove.mgmt_ds_versions.list()
            if v.datastore_name == datastore}


def test_activate_sets_the_default_idempotently(local_cloud, trove,
                                                two_versions):
    datastore, ids = two_versions
    _, data = support.activate(local_cloud, datastore, '8.0')
    assert (data['version_id'], data['action'], data['default']) == (
        ids['8.0'], 'updated', True)
    assert trove.datastores.get(datastore).default_version == ids['8.0']

    _, again = support.activate(local_cloud, datastore, '8.0')
    assert again['action'] == 'unchanged'

    _, moved = support.activate(local_cloud, datastore, '8.4')
    assert moved['default'] is True
    assert trove.datastores.get(datastore).default_version == ids['8.4']
    versions = _versions(trove, datastore)
    assert not versions['8.0'].default and versions['8.0'].active


def test_exclusive_deactivates_the_other_versions(local_cloud, trove,
                                                  two_versions):
    datastore, ids = two_versions
    _, data = support.activate(local_cloud, datastore, '8.4', '--exclusive')
    assert data['active'] and data['default']
    versions = _versions(trove, datastore)
    assert versions['8.4'].active and not versions['8.0'].active
    # Users (not admins) now see only the active default version.
    demo = connection.trove_client(
        local_cloud.connection(local_cloud.demo_cloud))
    assert [v.name for v in demo.datastore_versions.list(datastore)] == [
        '8.4']

    # Activating the inactive one brings it back as the default.
    _, back = support.activate(local_cloud, datastore, '8.0')
    assert back['active'] and back['default']
    assert trove.datastores.get(datastore).default_version == ids['8.0']


def test_unknown_datastore_lists_datastores(local_cloud, two_versions):
    datastore, _ = two_versions
    result, _ = support.activate(local_cloud, 'no-such-ds', '1',
                                 check=False)
    assert result.returncode != 0
    lines = support.error_lines(result)
    assert len(lines) == 1
    assert "datastore 'no-such-ds' not found; datastores:" in lines[0]
    assert datastore in lines[0]


def test_unknown_version_lists_versions(local_cloud, trove, two_versions):
    datastore, _ = two_versions
    result, _ = support.activate(local_cloud, datastore, '9.9', check=False)
    assert result.returncode != 0
    assert support.error_lines(result) == [
        f"datastore '{datastore}' has no version '9.9'; versions: 8.0, 8.4"]
    assert not any(v.default for v in _versions(trove, datastore).values())


def test_activate_needs_admin(local_cloud, two_versions):
    datastore, _ = two_versions
    result = support.helpers.run(
        'activate-trove-image', datastore, '8.0', '--os-cloud',
        local_cloud.demo_cloud, env=local_cloud.env(), check=False)
    assert result.returncode != 0
    assert 'needs the admin role' in support.error_lines(result)[0]
