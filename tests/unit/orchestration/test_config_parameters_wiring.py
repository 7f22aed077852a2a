"""Where configuration parameters are loaded: provision's plan on the
local cloud, the devstack extra phase, and load-trove-image's options and
columns pass the way in (trove-manage or the API) to load_image; stand-ins
for the cloud (tests/integration/test_config_parameters.py has the real
one)."""

import types
from unittest import mock

import load_image
from load_image import datastores
from load_image import parameters
from trovestack.cloud import configs
from trovestack.cloud import layout as layout_mod
from trovestack.commands import devstack as devstack_command
from trovestack.commands import load_image as load_command
from trovestack.orchestration import devstack
from trovestack.orchestration import provision
from trovestack.orchestration import steps
from trovestack.trove import trove_config


def _parameters(**fields):
    return datastores.ParametersResult(**fields)


# --------------------------------------------------------------- provision
def test_provision_on_the_local_cloud_names_its_trove_conf(tmp_path):
    request = provision.ProvisionRequest(
        datastores=[('postgresql', '17')], image=__file__,
        state_dir=str(tmp_path), tempest_conf=str(tmp_path / 't.conf'))
    load, = [s for s in provision.plan(request) if s.name == 'load-image']
    conf = configs.config_file('trove', layout_mod.Layout(tmp_path))
    assert load.describe.endswith(
        f'--config-params {steps.validation_rules("postgresql")} '
        f'--trove-config {conf}')


def test_provision_elsewhere_loads_no_parameters(tmp_path):
    request = provision.ProvisionRequest(
        datastores=[('postgresql', '17')], image=__file__,
        os_cloud='elsewhere', tempest_conf=str(tmp_path / 't.conf'))
    load, = [s for s in provision.plan(request) if s.name == 'load-image']
    assert '--config-params' not in load.describe
    assert '--trove-config' not in load.describe


def test_provision_row_says_how_many_and_which_way(tmp_path, monkeypatch):
    seen = {}

    def make_request(*args, **kwargs):
        seen.update(kwargs)
        return types.SimpleNamespace()

    result = types.SimpleNamespace(
        image=types.SimpleNamespace(action='reused', id='img'),
        version=types.SimpleNamespace(action='unchanged', default=True),
        parameters=_parameters(unchanged=['a', 'b'], via='trove-manage',
                               total=2))
    monkeypatch.setattr(load_image, 'make_request', make_request)
    monkeypatch.setattr(load_image, 'read_image', lambda request: None)
    monkeypatch.setattr(load_image, 'load', lambda *a, **k: result)
    tree = tmp_path / 'trove-tree'
    rules = tree / 'trove' / 'templates' / 'postgresql'
    rules.mkdir(parents=True)
    (rules / 'validation-rules.json').write_text('{}')
    step = steps.load_image(
        'g.qcow2', 'postgresql', '17', default=True,
        how=steps.Load(tree=str(tree), trove_conf='/s/trove.conf'))
    row, = step.run(steps.Context(image='g.qcow2'))
    assert seen['trove_config'] == '/s/trove.conf'
    assert row.action == ('image reused (img), version unchanged, default, '
                          'parameters 2 of 2 via trove-manage')


# ---------------------------------------------------------------- devstack
FILES = {trove_config.TROVE_CONF: '/etc/trove/trove.conf',
         trove_config.GUESTAGENT_CONF: '/etc/trove/trove-guestagent.conf'}


def _devstack_register(monkeypatch, tmp_path, **plan_fields):
    rules = tmp_path / 'trove' / 'templates' / 'postgresql'
    rules.mkdir(parents=True)
    (rules / 'validation-rules.json').write_text('{}')
    image = tmp_path / 'g.qcow2'
    image.write_bytes(b'')
    requests = []

    def make_request(image, name, version, **kwargs):
        requests.append(kwargs)
        return types.SimpleNamespace(**kwargs)

    def load(conn, request, image_file):
        return types.SimpleNamespace(
            image=types.SimpleNamespace(action='uploaded', name='g',
                                        id='img'),
            version=types.SimpleNamespace(action='created', default=True),
            parameters=_parameters(
                created=['x'], skipped=['max_connections'], total=2)
            if request.config_params else None)

    monkeypatch.setattr(load_image, 'make_request', make_request)
    monkeypatch.setattr(load_image, 'read_image', lambda request: None)
    monkeypatch.setattr(load_image, 'load', load)
    plan = devstack.ExtraPlan(datastores=(('postgresql', '17'),),
                              config_files=FILES, image=str(image),
                              **plan_fields)
    loads = [step for step in devstack.plan_steps(plan)
             if step.name == 'load-image']
    return requests, steps.run(loads, steps.Context(image=str(image)))


def test_devstack_loads_with_trove_manage_and_its_trove_conf(
        monkeypatch, tmp_path):
    requests, rows = _devstack_register(
        monkeypatch, tmp_path, config_params_tree=str(tmp_path),
        trove_manage='/opt/stack/bin/trove-manage')
    assert (requests[0]['trove_config'], requests[0]['trove_manage']) == (
        '/etc/trove/trove.conf', '/opt/stack/bin/trove-manage')
    assert requests[0]['config_params'] == str(
        tmp_path / 'trove' / 'templates' / 'postgresql' /
        'validation-rules.json')
    assert requests[0]['image_name'] == 'g'
    row, = rows
    assert (row.kind, row.name) == ('load-image', 'postgresql 17')
    assert row.action == (
        'image uploaded (img), version created, default, parameters 1 of '
        '2 via api; not loaded (the API cannot take them): max_connections')


def test_devstack_without_trove_manage_uses_the_api(monkeypatch, tmp_path):
    requests, _ = _devstack_register(monkeypatch, tmp_path,
                                     config_params_tree=str(tmp_path))
    assert requests[0]['trove_config'] is None


def test_devstack_without_parameters_loads_none(monkeypatch, tmp_path):
    requests, rows = _devstack_register(monkeypatch, tmp_path)
    assert requests[0]['config_params'] is None
    assert 'parameters' not in rows[0].action


def test_devstack_extra_option_reaches_the_plan():
    command = devstack_command.DevstackExtra(types.SimpleNamespace(), None)
    parser = command.get_parser('trovestack devstack-extra')
    plan = command._plan(parser.parse_args([
        '--trove-conf', 't', '--guestagent-conf', 'g', 'postgresql:17',
        '--config-params-tree', '/opt/stack/trove',
        '--trove-manage', '/usr/local/bin/trove-manage']))
    assert plan.trove_manage == '/usr/local/bin/trove-manage'
    assert plan.config_params_tree == '/opt/stack/trove'
    assert command._plan(parser.parse_args([
        '--trove-conf', 't', '--guestagent-conf', 'g',
        'postgresql:17'])).trove_manage is None


# -------------------------------------------------------- load-trove-image
def _load_command(tmp_path, monkeypatch, *argv, chosen=None):
    image = tmp_path / 'g.img'
    image.write_bytes(b'\0' * 1024)
    rules = tmp_path / 'rules.json'
    rules.write_text('{}')
    loaded = []

    def load(conn, request, image_file, progress=None):
        loaded.append(request)
        return types.SimpleNamespace(
            image=types.SimpleNamespace(id='i', name='n', action='reused',
                                        bytes_uploaded=0),
            version=types.SimpleNamespace(
                datastore='postgresql', datastore_id='d', version='17',
                version_id='v', action='unchanged', default=False),
            pruned=[], parameters=_parameters(
                created=['a'], skipped=['max_connections', 'autovacuum'],
                total=3))

    choose = mock.Mock(return_value=chosen)
    monkeypatch.setattr(load_command.connection, 'command_connection',
                        lambda *a, **k: 'conn')
    monkeypatch.setattr(load_image, 'load', load)
    monkeypatch.setattr(parameters, 'choose', choose)
    command = load_command.LoadImage(mock.Mock(), None)
    command.app.options = types.SimpleNamespace(verbose_level=0)
    parsed = command.get_parser('load-trove-image').parse_args([
        str(image), '--datastore', 'postgresql', '--version', '17',
        '--config-params', str(rules), *argv])
    columns, row = command.take_action(parsed)
    return loaded[0], choose, dict(zip(columns, row, strict=True))


def test_load_image_finds_the_local_cloud_by_itself(tmp_path, monkeypatch):
    database = parameters.TroveDatabase('/s/trove.conf', '/v/trove-manage')
    request, choose, row = _load_command(tmp_path, monkeypatch,
                                         chosen=database)
    choose.assert_called_once_with('conn', trove_manage=None)
    assert request.trove_database == database
    assert (row['config_parameters'], row['config_parameters_via'],
            row['config_parameters_not_loaded']) == (
        'created 1, updated 0, unchanged 0, skipped 2', 'api',
        'max_connections,autovacuum')


def test_load_image_through_the_api_on_request(tmp_path, monkeypatch):
    request, choose, _ = _load_command(tmp_path, monkeypatch,
                                       '--parameters-through-api')
    choose.assert_not_called()
    assert request.trove_database is None


def test_load_image_with_a_given_trove_conf(tmp_path, monkeypatch):
    conf = tmp_path / 'trove.conf'
    conf.write_text('')
    manage = tmp_path / 'trove-manage'
    manage.write_text('')
    manage.chmod(0o755)
    request, choose, _ = _load_command(
        tmp_path, monkeypatch, '--trove-config', str(conf),
        '--trove-manage', str(manage))
    choose.assert_not_called()
    assert request.trove_database == parameters.TroveDatabase(
        str(conf), str(manage))
