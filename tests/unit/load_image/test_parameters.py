"""load_image.parameters: which way configuration parameters go in
(trove-manage or the management API) and what the result says; a
stand-in trove-manage and Trove."""

import dataclasses
import json
import os
import subprocess
import types

import pytest

from load_image import datastores
from load_image import parameters
from trovestack.cloud import layout as layout_mod

RULES = [
    {'name': 'max_connections', 'type': 'integer', 'min': 0,
     'restart_required': True},
    {'name': 'work_mem', 'type': 'integer', 'min': 64, 'max': 2147483647,
     'restart_required': False},
    {'name': 'autovacuum', 'type': 'boolean', 'restart_required': False},
    {'name': 'datestyle', 'type': 'string', 'restart_required': False},
    {'name': 'join_buffer_size', 'type': 'integer', 'min': 128,
     'max': 2 ** 64 - 1, 'restart_required': False},
]
VERSION = datastores.VersionResult(
    datastore='postgresql', datastore_id='ds', version='17',
    version_number='17.2', version_id='v1', action='unchanged',
    default=True, active=True)


@pytest.fixture
def rules_file(tmp_path):
    path = tmp_path / 'validation-rules.json'
    path.write_text(json.dumps({'configuration-parameters': RULES}))
    return path


@pytest.fixture
def trove_manage(tmp_path):
    """An executable file named trove-manage and a trove.conf."""
    command = tmp_path / 'bin' / 'trove-manage'
    command.parent.mkdir()
    command.write_text('#!/bin/sh\nexit 0\n')
    command.chmod(0o755)
    conf = tmp_path / 'trove.conf'
    conf.write_text('[database]\nconnection = sqlite://\n')
    return parameters.trove_database(str(conf), str(command))


def _listed(rule):
    """A parameter as Trove's management API lists it (limits of 0 and
    None left out, limits capped as loaded)."""
    record = types.SimpleNamespace(name=rule['name'], type=rule['type'],
                                   restart_required=rule['restart_required'])
    for key, field in (('max', 'max_size'), ('min', 'min_size')):
        if rule.get(key):
            setattr(record, field, min(rule[key], datastores.LIMIT_MAX))
    return record


class _Mgmt:
    """A MgmtClient whose parameter list is given, then what Trove lists
    after trove-manage ran."""

    def __init__(self, *lists):
        self.lists = list(lists)
        self.calls = 0

    def parameters(self, version_id):
        assert version_id == 'v1'
        self.calls += 1
        return self.lists.pop(0) if len(self.lists) > 1 else self.lists[0]


class _Runs:
    """subprocess.run stand-in: records argv and the rules file given."""

    def __init__(self, returncode=0, stderr=''):
        self.argv, self.files = [], []
        self.returncode, self.stderr = returncode, stderr

    def __call__(self, argv, **kwargs):
        assert kwargs['stdin'] is subprocess.DEVNULL
        self.argv.append(argv)
        with open(argv[6]) as stream:
            self.files.append(json.load(stream)['configuration-parameters'])
        return subprocess.CompletedProcess(argv, self.returncode, '',
                                           self.stderr)


# ------------------------------------------------------------ the choice
def test_api_only_is_the_api(trove_manage):
    assert parameters.choose(object(), api_only=True,
                             trove_config=trove_manage.config_file) is None


def test_a_given_trove_conf_means_trove_manage(trove_manage):
    chosen = parameters.choose(object(),
                               trove_config=trove_manage.config_file,
                               trove_manage=trove_manage.command)
    assert chosen == trove_manage


def test_a_missing_trove_conf_is_an_error(tmp_path):
    with pytest.raises(datastores.DatastoreError,
                       match='trove.conf is not a readable file'):
        parameters.trove_database(str(tmp_path / 'trove.conf'))


def test_a_missing_trove_manage_is_named(tmp_path, monkeypatch):
    conf = tmp_path / 'trove.conf'
    conf.write_text('')
    monkeypatch.setattr(parameters, 'default_trove_manage', lambda: None)
    with pytest.raises(datastores.DatastoreError,
                       match='^trove-manage not found'):
        parameters.trove_database(str(conf))
    with pytest.raises(datastores.DatastoreError,
                       match='^/no/trove-manage not found'):
        parameters.trove_database(str(conf), '/no/trove-manage')


def test_default_trove_manage_is_beside_this_python(tmp_path, monkeypatch):
    python = tmp_path / 'python3'
    manage = tmp_path / 'trove-manage'
    manage.write_text('')
    manage.chmod(0o755)
    monkeypatch.setattr(parameters.sys, 'executable', str(python))
    assert parameters.default_trove_manage() == str(manage)


def _local_cloud(tmp_path, keystone_port=25000):
    """A local cloud's state directory: cloud.json and trove.conf."""
    from trovestack.cloud import configs

    layout = layout_mod.Layout(tmp_path / 'cloud')
    layout.root.mkdir()
    layout.save_state(layout_mod.CloudState(
        ports={'keystone': keystone_port, 'trove': keystone_port + 8},
        admin_password='x', demo_password='x', service_password='x',
        clouds_yaml=str(tmp_path / 'clouds.yaml')))
    conf = configs.config_file('trove', layout)
    conf.parent.mkdir(parents=True)
    conf.write_text('[database]\n')
    return layout.root, conf


def _conn(auth_url):
    """A connection authenticating at ``auth_url`` (None: no auth URL)."""
    auth = {'auth_url': auth_url} if auth_url else {}
    return types.SimpleNamespace(
        config=types.SimpleNamespace(config={'auth': auth}),
        session=types.SimpleNamespace(auth=types.SimpleNamespace(
            auth_url=None)))


def test_the_local_cloud_is_recognised_by_its_identity_endpoint(
        tmp_path, trove_manage):
    state_dir, conf = _local_cloud(tmp_path, 25000)
    conn = _conn('http://127.0.0.1:25000/v3/')
    assert parameters.local_cloud_config(conn, state_dir) == str(conf)
    chosen = parameters.choose(conn, state_dir=state_dir,
                               trove_manage=trove_manage.command)
    assert chosen == dataclasses.replace(trove_manage,
                                         config_file=str(conf))


@pytest.mark.parametrize('auth_url', [
    'http://127.0.0.1:9999/v3',  # another Keystone on this host
    'https://keystone.example.com:25000/v3',  # another cloud
    None,  # no auth URL known
])
def test_any_other_cloud_goes_through_the_api(tmp_path, auth_url):
    state_dir, _ = _local_cloud(tmp_path, 25000)
    assert parameters.choose(_conn(auth_url), state_dir=state_dir) is None


def test_no_local_cloud_goes_through_the_api(tmp_path):
    conn = _conn('http://127.0.0.1:25000/v3')
    assert parameters.choose(conn, state_dir=tmp_path / 'none') is None


# --------------------------------------------------------- trove-manage
def test_trove_manage_loads_every_parameter(rules_file, trove_manage,
                                            monkeypatch):
    runs = _Runs()
    monkeypatch.setattr(parameters.subprocess, 'run', runs)
    mgmt = _Mgmt([], [_listed(rule) for rule in RULES])
    result = parameters.load(None, VERSION, rules_file,
                             database=trove_manage, mgmt=mgmt)
    assert runs.argv == [[
        trove_manage.command, '--config-file', trove_manage.config_file,
        'db_load_datastore_config_parameters', 'postgresql', '17',
        runs.argv[0][6], '--version', '17.2']]
    # Every rule, limits within what Trove's database holds.
    given = {rule['name']: rule for rule in runs.files[0]}
    assert list(given) == [rule['name'] for rule in RULES]
    assert given['join_buffer_size']['max'] == 2 ** 63 - 1
    assert 'max' not in given['max_connections']
    assert not os.path.exists(runs.argv[0][6])  # a temporary copy
    assert (result.via, result.total, result.loaded) == (
        'trove-manage', 5, 5)
    assert result.created == [rule['name'] for rule in RULES]
    assert result.skipped == []
    assert result.counts() == 'created 5, updated 0, unchanged 0, skipped 0'
    assert result.summary() == '5 of 5 via trove-manage'


def test_nothing_differs_nothing_runs(rules_file, trove_manage,
                                      monkeypatch):
    runs = _Runs()
    monkeypatch.setattr(parameters.subprocess, 'run', runs)
    mgmt = _Mgmt([_listed(rule) for rule in RULES])
    result = parameters.load(None, VERSION, rules_file,
                             database=trove_manage, mgmt=mgmt)
    assert runs.argv == [] and mgmt.calls == 1
    assert result.unchanged == [rule['name'] for rule in RULES]
    assert result.loaded == 5


def test_a_differing_parameter_is_updated(rules_file, trove_manage,
                                          monkeypatch):
    runs = _Runs()
    monkeypatch.setattr(parameters.subprocess, 'run', runs)
    before = [_listed(rule) for rule in RULES]
    before[1].max_size = 5  # work_mem changed since
    mgmt = _Mgmt(before, [_listed(rule) for rule in RULES])
    result = parameters.load(None, VERSION, rules_file,
                             database=trove_manage, mgmt=mgmt)
    assert len(runs.argv) == 1
    assert (result.updated, len(result.unchanged)) == (['work_mem'], 4)


def test_trove_manage_failing_is_one_line_without_secrets(
        rules_file, trove_manage, monkeypatch):
    monkeypatch.setattr(parameters.subprocess, 'run', _Runs(
        returncode=1, stderr=(
            'Command failed, please check log for more info.\n'
            '2026-12-06 07:41:14.428 2073 ERROR root oslo_db.exception.'
            'DBError: (1045) mysql+pymysql://root:s3cret@db/trove\n'
            '2026-12-06 07:41:14.428 2073 ERROR root \n')))
    with pytest.raises(datastores.DatastoreError) as error:
        parameters.load(None, VERSION, rules_file, database=trove_manage,
                        mgmt=_Mgmt([]))
    message = str(error.value)
    assert 's3cret' not in message
    assert message.endswith(
        'postgresql 17 failed (exit 1): oslo_db.exception.DBError: (1045) '
        'mysql+pymysql://root:***@db/trove')


def test_parameters_trove_does_not_list_afterwards_are_named(
        rules_file, trove_manage, monkeypatch):
    monkeypatch.setattr(parameters.subprocess, 'run', _Runs())
    mgmt = _Mgmt([], [_listed(rule) for rule in RULES[:3]])
    with pytest.raises(datastores.DatastoreError,
                       match='lists 3 of the 5 .* missing: datestyle, '
                             'join_buffer_size$'):
        parameters.load(None, VERSION, rules_file, database=trove_manage,
                        mgmt=mgmt)


# ------------------------------------------------------------- the API
def test_the_api_path_names_what_it_cannot_take(rules_file, monkeypatch,
                                                caplog):
    created = []
    manager = types.SimpleNamespace(
        create=lambda version_id, name, **fields: created.append(name))
    monkeypatch.setattr(datastores, '_parameter_manager',
                        lambda trove: manager)
    result = parameters.load(lambda: None, VERSION, rules_file,
                             database=None, mgmt=_Mgmt([]))
    assert created == ['work_mem', 'datestyle', 'join_buffer_size']
    assert (result.via, result.total, result.loaded) == ('api', 5, 3)
    assert result.skipped == ['max_connections', 'autovacuum']
    assert result.counts() == 'created 3, updated 0, unchanged 0, skipped 2'
    assert result.summary() == (
        '3 of 5 via api; not loaded (the API cannot take them): '
        'max_connections, autovacuum')
    warning, = [r.getMessage() for r in caplog.records
                if r.levelname == 'WARNING']
    assert warning.endswith('2 of 5 were not loaded (trove-manage with '
                            "Trove's trove.conf loads them all: "
                            '--trove-config): max_connections, autovacuum')
