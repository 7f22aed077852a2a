"""Unit tests of load_image.datastores with a stub management API."""

import concurrent.futures
import json
import time
from unittest import mock

import pytest

from load_image import datastores


def _version(**fields):
    values = dict(id='v1', name='8.4', version='8.4', datastore_id='d1',
                  datastore_name='mysql', datastore_manager='mysql',
                  image='img-1', image_tags=[''], packages=[''], active=True,
                  default=False)
    values.update(fields)
    name = values.pop('name')
    version = mock.Mock(**values)
    version.name = name  # Mock(name=...) names the mock itself
    return version


class _StubVersions:
    """trove.mgmt_ds_versions double keeping state like Trove does."""

    def __init__(self, *versions):
        self.versions = list(versions)
        self.edits = []
        self.creates = []

    def list(self):
        return list(self.versions)

    def get(self, version_id):
        return next(v for v in self.versions if v.id == version_id)

    def create(self, name, datastore_name, manager, image, packages, active,
               default, image_tags, version):
        self.creates.append(name)
        self.versions.append(_version(
            id=f'new-{len(self.creates)}', name=name, version=version,
            datastore_name=datastore_name, datastore_manager=manager,
            image=image, image_tags=image_tags or [''],
            packages=packages or [''], active=json.loads(active)))

    def edit(self, version_id, **changes):
        self.edits.append((version_id, changes))
        target = self.get(version_id)
        for key, value in changes.items():
            setattr(target, key, json.loads(value)
                    if key in ('active', 'default') else value)
        if changes.get('default') == 'true':
            for other in self.versions:
                if other.id != version_id and \
                        other.datastore_name == target.datastore_name:
                    other.default = False


def _trove(*versions):
    return mock.Mock(mgmt_ds_versions=_StubVersions(*versions))


def _register(trove, **overrides):
    arguments = dict(datastore='mysql', version='8.4', manager='mysql',
                     image_id='img-1')
    arguments.update(overrides)
    return datastores.register_version(trove, **arguments)


class TestValidation:

    @pytest.mark.parametrize('value', ['8.4', '17', '10.11.6', 'v1_latest'])
    def test_good_versions(self, value):
        assert datastores.validate_version(value) == value

    @pytest.mark.parametrize('value', ['', '8.4 ', '-1', '8/4', 'x' * 129,
                                       '.hidden', '8.4;rm'])
    def test_bad_versions(self, value):
        with pytest.raises(datastores.DatastoreError, match='invalid version'):
            datastores.validate_version(value)

    def test_unknown_manager_lists_the_valid_ones(self):
        with pytest.raises(datastores.DatastoreError,
                           match='valid managers: mariadb, mysql, postgresql'):
            datastores.validate_manager('mongo')

    def test_known_managers_match_trove(self):
        constants = pytest.importorskip('trove.common.constants')
        assert set(datastores.KNOWN_MANAGERS) == \
            set(constants.REGISTRY_EXT_DEFAULTS)


class TestRegisterVersion:

    def test_creates_missing_version(self):
        trove = _trove()
        result = _register(trove, packages=['a'], image_tags=['t'])
        assert result.action == 'created'
        assert result.version_id == 'new-1'

    def test_unchanged_when_everything_matches(self):
        trove = _trove(_version())
        assert _register(trove).action == 'unchanged'
        assert trove.mgmt_ds_versions.edits == []

    def test_patches_only_what_differs(self):
        trove = _trove(_version())
        result = _register(trove, image_id='img-2')
        assert result.action == 'updated'
        assert trove.mgmt_ds_versions.edits == [('v1', {'image': 'img-2'})]

    def test_same_name_other_number_is_another_version(self):
        trove = _trove(_version(version='8.4.1'))
        result = _register(trove, version_number='8.4.2')
        assert result.action == 'created'
        assert len(trove.mgmt_ds_versions.versions) == 2


class TestSetDefault:

    def test_unknown_datastore_lists_datastores(self):
        trove = _trove(_version())
        with pytest.raises(datastores.DatastoreError,
                           match="'redis' not found; datastores: mysql"):
            datastores.set_default_version(trove, 'redis', '7')

    def test_unknown_version_lists_versions(self):
        trove = _trove(_version())
        with pytest.raises(datastores.DatastoreError,
                           match="no version '9'; versions: 8.4"):
            datastores.set_default_version(trove, 'mysql', '9')

    def test_idempotent(self):
        trove = _trove(_version(default=True))
        result = datastores.set_default_version(trove, 'mysql', '8.4')
        assert (result.action, result.default) == ('unchanged', True)

    def test_exclusive_deactivates_the_others(self):
        trove = _trove(_version(), _version(id='v2', name='8.0',
                                            version='8.0'))
        result = datastores.set_default_version(trove, 'mysql', '8.4',
                                                exclusive=True)
        assert result.default and result.active
        assert trove.mgmt_ds_versions.get('v2').active is False

    def test_shared_name_is_refused(self):
        trove = _trove(_version(version='8.4.1'),
                       _version(id='v2', version='8.4.2'))
        with pytest.raises(datastores.DatastoreError, match='share that name'):
            datastores.set_default_version(trove, 'mysql', '8.4',
                                           version_number='8.4.2')


class TestConfigParameters:

    def test_loads_supported_types_and_skips_the_others(self, tmp_path):
        rules = tmp_path / 'validation-rules.json'
        rules.write_text(json.dumps({'configuration-parameters': [
            {'name': 'max_connections', 'type': 'integer', 'min': 1,
             'max': 100, 'restart_required': False},
            {'name': 'sql_mode', 'type': 'string',
             'restart_required': False},
            {'name': 'local_infile', 'type': 'boolean',
             'restart_required': False},
        ]}))
        existing = mock.Mock(restart_required=False, type='string',
                             spec=['name', 'restart_required', 'type'])
        existing.name = 'sql_mode'
        manager = mock.Mock()
        manager.list_all_parameter_by_version.return_value = [existing]
        with mock.patch(
                        'troveclient.v1.management.MgmtConfigurationParameters',
                               return_value=manager):
            result = datastores.load_config_parameters(
                mock.Mock(), 'v1', rules)
        assert (result.created, result.unchanged, result.skipped) == (
            ['max_connections'], ['sql_mode'], ['local_infile'])
        manager.create.assert_called_once_with(
            'v1', 'max_connections', restart_required=False,
            data_type='integer', max_size=100, min_size=1)

    def test_bad_file(self, tmp_path):
        rules = tmp_path / 'rules.json'
        rules.write_text('{"something": []}')
        with pytest.raises(datastores.DatastoreError,
                           match='not a validation-rules.json'):
            datastores.load_config_parameters(mock.Mock(), 'v1', rules)

    def test_nothing_to_change_needs_no_troveclient(self, tmp_path):
        rules = tmp_path / 'validation-rules.json'
        rules.write_text(json.dumps({'configuration-parameters': [
            {'name': 'max_connections', 'type': 'integer', 'min': 1,
             'max': 100, 'restart_required': False}]}))
        listed = mock.Mock(restart_required=False, type='integer',
                           max_size=100, min_size=1)
        listed.name = 'max_connections'
        make_client = mock.Mock()
        result = datastores.load_config_parameters(
            make_client, 'v1', rules, existing=[listed])
        assert result.unchanged == ['max_connections']
        make_client.assert_not_called()

    def test_limits_beyond_a_signed_64_bit_integer_are_capped(self, tmp_path):
        rules = tmp_path / 'validation-rules.json'
        rules.write_text(json.dumps({'configuration-parameters': [
            {'name': 'max_connect_errors', 'type': 'integer', 'min': 1,
             'max': 2 ** 64 - 1, 'restart_required': False}]}))
        manager = mock.Mock()
        manager.list_all_parameter_by_version.return_value = []
        with mock.patch(
                'troveclient.v1.management.MgmtConfigurationParameters',
                return_value=manager):
            datastores.load_config_parameters(mock.Mock(), 'v1', rules)
        manager.create.assert_called_once_with(
            'v1', 'max_connect_errors', restart_required=False,
            data_type='integer', max_size=2 ** 63 - 1, min_size=1)


class _RacyVersions(_StubVersions):
    """Trove's create: it checks that the version is missing, then creates
    it or updates the one a concurrent request made meanwhile (both get
    202)."""

    def create(self, name, datastore_name, *args, version, **kwargs):
        if any(v.name == name for v in self.versions):
            raise datastores.DatastoreError('already exists')
        time.sleep(0.3)  # the other request checks now
        if not any(v.name == name for v in self.versions):
            super().create(name, datastore_name, *args, version=version,
                           **kwargs)


def test_concurrent_runs_on_one_host_create_once(monkeypatch, tmp_path):
    monkeypatch.setattr(datastores.files.tempfile, 'gettempdir',
                        lambda: str(tmp_path))
    trove = mock.Mock(mgmt_ds_versions=_RacyVersions())
    trove.client.get_endpoint.return_value = 'http://trove'
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda _: _register(trove), range(2)))
    assert sorted(r.action for r in results) == ['created', 'unchanged']
    assert len(trove.mgmt_ds_versions.versions) == 1
