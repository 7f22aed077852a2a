"""Configuration parameters on the real local cloud (API-only, no compute).

Every parameter of Trove's validation-rules.json goes in with trove-manage
where Trove's database is reachable (here: the local cloud's trove.conf);
through the management API the ones it cannot take are named.  Trove's
answers are read back with python-troveclient's public call
(``configuration_parameters.parameters``), as trove-tempest-plugin's
configuration test does.
"""

import collections
import json
import pathlib

import pytest

from load_image import datastores as ds_mod
from load_image import parameters
from tests import load_image_support as support
from trovestack.orchestration import steps

# (manager, version): what the compute cloud's basic scenarios run.
VERSIONS = (('postgresql', '17'), ('mariadb', '11.8'))


def _rules(manager):
    path = steps.validation_rules(manager)
    assert path, f"the installed Trove has no {manager} validation rules"
    return pathlib.Path(path), \
        json.loads(pathlib.Path(path).read_text())['configuration-parameters']


def _api_can_take(rule):
    return rule['type'] == 'string' or (
        rule['type'] == 'integer' and 'min' in rule and 'max' in rule)


def _listed(trove, datastore, version):
    """{name: parameter} through Trove's public API; no name twice."""
    found = trove.configuration_parameters.parameters(datastore, version)
    counts = collections.Counter(p.name for p in found)
    assert [n for n, c in counts.items() if c > 1] == []
    return {p.name: p for p in found}


def _load(local_cloud, tmp_path, datastore, manager, version, *extra,
          env=None):
    rules_path, _ = _rules(manager)
    image = tmp_path / f'{datastore}.img'
    if not image.exists():
        support.make_raw_image(image)
    return support.load(local_cloud, image, datastore, version,
                        '--manager', manager, '--config-params', rules_path,
                        *extra, env=env)


@pytest.mark.parametrize('manager, version', VERSIONS)
def test_trove_manage_loads_every_parameter_and_converges(
        local_cloud, trove, tmp_path, manager, version):
    _, rules = _rules(manager)
    datastore = support.unique(manager)
    trove_conf = local_cloud.config_file('trove')

    _, first = _load(local_cloud, tmp_path, datastore, manager, version,
                     '--trove-config', trove_conf)
    assert first['config_parameters_via'] == 'trove-manage'
    assert first['config_parameters'] == (
        f'created {len(rules)}, updated 0, unchanged 0, skipped 0')
    assert first['config_parameters_not_loaded'] == ''
    listed = _listed(trove, datastore, version)
    assert len(listed) == len(rules)
    assert set(listed) == {rule['name'] for rule in rules}
    for rule in rules:  # each as the file has it
        assert listed[rule['name']].type == rule['type'], rule
    # The parameter trove-tempest-plugin's configuration test sets.
    assert listed['max_connections'].type == 'integer'
    if manager == 'postgresql':
        # No maximum: the management API could not take it.
        assert not _api_can_take(
            next(r for r in rules if r['name'] == 'max_connections'))
        assert not hasattr(listed['max_connections'], 'max')

    # Again: nothing differs, nothing is run, nothing doubles.
    _, again = _load(local_cloud, tmp_path, datastore, manager, version,
                     '--trove-config', trove_conf)
    assert again['config_parameters'] == (
        f'created 0, updated 0, unchanged {len(rules)}, skipped 0')
    assert len(_listed(trove, datastore, version)) == len(rules)

    # trove-manage itself a second time: it updates the rows it finds.
    version_row = ds_mod.find_version(trove, datastore, version)
    record = ds_mod.VersionResult(
        datastore=datastore, datastore_id=version_row.datastore_id,
        version=version, version_number=version, version_id=version_row.id,
        action='unchanged', default=False, active=True)
    parameters.run_trove_manage(parameters.trove_database(trove_conf),
                                record, rules)
    assert len(_listed(trove, datastore, version)) == len(rules)


def test_trove_manage_restores_a_changed_parameter(local_cloud, trove,
                                                   tmp_path):
    """A row that differs from the file is updated in place."""
    datastore = support.unique('mariadb')
    trove_conf = local_cloud.config_file('trove')
    _, first = _load(local_cloud, tmp_path, datastore, 'mariadb', '11.8',
                     '--trove-config', trove_conf)
    from troveclient.v1 import management

    management.MgmtConfigurationParameters(trove).modify(
        first['version_id'], 'max_connections', restart_required=True,
        data_type='integer', max_size=5, min_size=1)
    assert _listed(trove, datastore, '11.8')['max_connections'].max == 5

    _, again = _load(local_cloud, tmp_path, datastore, 'mariadb', '11.8',
                     '--trove-config', trove_conf)
    _, rules = _rules('mariadb')
    assert again['config_parameters'] == (
        f'created 0, updated 1, unchanged {len(rules) - 1}, skipped 0')
    listed = _listed(trove, datastore, '11.8')
    assert len(listed) == len(rules)
    assert (listed['max_connections'].max,
            listed['max_connections'].restart_required) == (100000, False)


def test_the_local_cloud_is_found_without_options(local_cloud, trove,
                                                  tmp_path):
    """load-trove-image on the local cloud (its state directory) uses
    its trove.conf by itself."""
    _, rules = _rules('postgresql')
    datastore = support.unique('postgresql')
    _, data = _load(local_cloud, tmp_path, datastore, 'postgresql', '17',
                    env=local_cloud.env(
                        TROVESTACK_STATE_DIR=str(local_cloud.state_dir)))
    assert data['config_parameters_via'] == 'trove-manage'
    assert len(_listed(trove, datastore, '17')) == len(rules)


@pytest.mark.parametrize('manager, version', VERSIONS)
def test_the_api_path_names_what_it_cannot_take(local_cloud, trove,
                                                tmp_path, manager, version):
    _, rules = _rules(manager)
    taken = [r['name'] for r in rules if _api_can_take(r)]
    refused = [r['name'] for r in rules if not _api_can_take(r)]
    assert refused, f'{manager}: every parameter fits the API'
    datastore = support.unique(manager)

    result, data = _load(local_cloud, tmp_path, datastore, manager, version,
                         '--parameters-through-api',
                         env=local_cloud.env(
                             TROVESTACK_STATE_DIR=str(
                                 local_cloud.state_dir)))
    assert data['config_parameters_via'] == 'api'
    assert data['config_parameters'] == (
        f'created {len(taken)}, updated 0, unchanged 0, '
        f'skipped {len(refused)}')
    assert data['config_parameters_not_loaded'].split(',') == refused
    warning = [line for line in result.stderr.splitlines()
               if 'were not loaded' in line]
    assert len(warning) == 1 and warning[0].endswith(', '.join(refused))
    listed = _listed(trove, datastore, version)
    assert set(listed) == set(taken)
    if manager == 'postgresql':
        assert 'max_connections' in refused
        assert 'max_connections' not in listed
