"""load-trove-image against the real local Keystone, Glance and Trove API."""

import json
import pathlib

from tests import helpers
from tests import load_image_support as support


def _version_show(local_cloud, datastore, version):
    return support.cli_json(local_cloud, 'datastore', 'version', 'show',
                            version, '--datastore', datastore)


def test_upload_rerun_change_keep_and_prune(local_cloud, admin, tmp_path):
    datastore, version = support.unique('mysql'), '8.4'
    image = support.make_raw_image(tmp_path / 'guest.img')
    image.with_name('guest.img.build-hash').write_text('abc123\n')

    _, first = support.load(local_cloud, image, datastore, version,
                            '--manager', 'mysql', '--guest-release', 'trixie')
    assert first['image_action'] == 'uploaded'
    assert first['bytes_uploaded'] == image.stat().st_size
    assert first['version_action'] == 'created'
    name = f'trove-guest-debian-trixie-{datastore}-{version}'
    assert first['image_name'] == name

    shown = support.cli_json(local_cloud, 'image', 'show', first['image_id'])
    assert shown['status'] == 'active' and shown['disk_format'] == 'raw'
    assert set(shown['tags']) == {'trove', datastore}
    assert shown['properties']['hw_rng_model'] == 'virtio'
    assert shown['properties']['trove_build_hash'] == 'abc123'
    assert shown['properties']['os_version'] == 'trixie'
    registered = _version_show(local_cloud, datastore, version)
    assert registered['image'] == first['image_id']
    assert registered['id'] == first['version_id']

    # Nothing changed: same image, nothing uploaded, no new version.
    _, again = support.load(local_cloud, image, datastore, version,
                            '--manager', 'mysql', '--guest-release', 'trixie')
    assert (again['image_action'], again['bytes_uploaded'],
            again['version_action']) == ('reused', 0, 'unchanged')
    assert (again['image_id'], again['version_id']) == (
        first['image_id'], first['version_id'])
    assert support.images_named(admin, name) == [first['image_id']]

    # A new build: new image, the version follows it, the old one is kept.
    support.make_raw_image(image)
    _, second = support.load(local_cloud, image, datastore, version,
                             '--manager', 'mysql', '--guest-release',
                             'trixie', '--keep-old')
    assert second['image_action'] == 'uploaded'
    assert second['image_id'] != first['image_id']
    assert (second['version_action'], second['version_id']) == (
        'updated', first['version_id'])
    assert _version_show(local_cloud, datastore, version)['image'] == \
        second['image_id']
    assert support.images_named(admin, name) == sorted(
        [first['image_id'], second['image_id']])
    assert second['images_pruned'] == ''

    # --prune removes the older image nobody uses any more.
    _, pruned = support.load(local_cloud, image, datastore, version,
                             '--manager', 'mysql', '--guest-release',
                             'trixie', '--prune')
    assert pruned['image_action'] == 'reused'
    assert pruned['images_pruned'] == first['image_id']
    assert support.images_named(admin, name) == [second['image_id']]
    versions = [v for v in support.cli_json(
        local_cloud, 'datastore', 'version', 'list', datastore)]
    assert [v['Name'] for v in versions] == [version]


def test_qcow2_with_options(local_cloud, trove, tmp_path):
    datastore = support.unique('pg')
    image = support.make_qcow2_image(tmp_path / 'guest.qcow2')
    _, data = support.load(
        local_cloud, image, datastore, '17', '--manager', 'postgresql',
        '--disk-format', 'qcow2', '--image-name', f'{datastore}-image',
        '--image-tags', 'ci,pg', '--packages', 'postgresql-17',
        '--visibility', 'public', '--default')
    assert data['default'] is True
    shown = support.cli_json(local_cloud, 'image', 'show', data['image_id'])
    assert shown['name'] == f'{datastore}-image'
    assert shown['disk_format'] == 'qcow2'
    assert shown['visibility'] == 'public'
    assert set(shown['tags']) == {'trove', datastore, 'ci', 'pg'}
    version = trove.mgmt_ds_versions.get(data['version_id'])
    assert version.datastore_manager == 'postgresql'
    assert sorted(version.image_tags) == ['ci', 'pg']
    assert version.packages == ['postgresql-17']
    assert trove.datastores.get(datastore).default_version == \
        data['version_id']


def test_two_datastores_side_by_side(local_cloud, trove, tmp_path):
    mysql, mariadb = support.unique('mysql'), support.unique('mariadb')
    loaded = {}
    for datastore, manager, version in ((mysql, 'mysql', '8.4'),
                                        (mariadb, 'mariadb', '11.4')):
        image = support.make_raw_image(tmp_path / f'{datastore}.img')
        _, loaded[datastore] = support.load(
            local_cloud, image, datastore, version, '--manager', manager,
            '--default')
    assert loaded[mysql]['image_id'] != loaded[mariadb]['image_id']
    assert loaded[mysql]['datastore_id'] != loaded[mariadb]['datastore_id']
    for datastore, data in loaded.items():
        shown = trove.datastores.get(datastore)
        assert shown.default_version == data['version_id']
        assert [v['id'] for v in shown.versions] == [data['version_id']]


def test_same_name_new_version_number_is_a_second_version(
        local_cloud, trove, tmp_path):
    datastore = support.unique('mysql')
    image = support.make_raw_image(tmp_path / 'g.img')
    ids = set()
    for number in ('8.4.1', '8.4.2', '8.4.2'):
        _, data = support.load(local_cloud, image, datastore, '8.4',
                               '--manager', 'mysql', '--version-number',
                               number)
        ids.add(data['version_id'])
    versions = [v for v in trove.mgmt_ds_versions.list()
                if v.datastore_name == datastore]
    assert sorted(v.version for v in versions) == ['8.4.1', '8.4.2']
    assert len(ids) == 2


def _rules_file(tmp_path):
    """Trove's own mysql validation-rules.json, minus the few limits that do
    not fit SQLite's 64-bit integers (the local cloud's database)."""
    import trove as trove_package

    shipped = (pathlib.Path(trove_package.__file__).parent / 'templates' /
               'mysql' / 'validation-rules.json')
    rules = json.loads(shipped.read_text())['configuration-parameters']
    rules = [rule for rule in rules
             if all(abs(int(rule.get(key, 0))) < 2 ** 63
                    for key in ('min', 'max'))]
    path = tmp_path / 'validation-rules.json'
    path.write_text(json.dumps({'configuration-parameters': rules}))
    return path, rules


def test_config_parameters_through_the_api(local_cloud, trove, tmp_path):
    rules_path, rules = _rules_file(tmp_path)
    supported = [p for p in rules if p['type'] == 'string' or (
        p['type'] == 'integer' and 'min' in p and 'max' in p)]
    skipped = len(rules) - len(supported)
    assert supported and skipped
    datastore = support.unique('mysql')
    image = support.make_raw_image(tmp_path / 'g.img')
    _, data = support.load(local_cloud, image, datastore, '8.4',
                           '--manager', 'mysql', '--config-params',
                           rules_path)
    assert data['config_parameters'] == (
        f'created {len(supported)}, updated 0, unchanged 0, '
        f'skipped {skipped}')
    params = trove.configuration_parameters.parameters_by_version(
        data['version_id'])
    assert len(params) == len(supported)
    _, again = support.load(local_cloud, image, datastore, '8.4',
                            '--manager', 'mysql', '--config-params',
                            rules_path)
    assert again['config_parameters'] == (
        f'created 0, updated 0, unchanged {len(supported)}, '
        f'skipped {skipped}')


def test_trovestack_runs_the_same_command(local_cloud, tmp_path):
    datastore = support.unique('mysql')
    image = support.make_raw_image(tmp_path / 'g.img')
    result = helpers.run(
        'trovestack', 'load-image', image, '--datastore', datastore,
        '--datastore-version', '8.4', '--manager', 'mysql', '--os-cloud',
        local_cloud.admin_cloud, '-f', 'json', env=local_cloud.env())
    data = json.loads(result.stdout)
    assert (data['image_action'], data['version_action']) == (
        'uploaded', 'created')
    result = helpers.run(
        'trovestack', 'activate', datastore, '8.4', '--os-cloud',
        local_cloud.admin_cloud, '-f', 'value', '-c', 'default',
        env=local_cloud.env())
    assert result.stdout.strip() == 'True'


def test_library_in_one_session(local_cloud, admin, trove, tmp_path):
    """What `trovestack provision` does: the library, one session."""
    from load_image import datastores
    from load_image import images

    datastore = support.unique('mysql')
    image_file = images.load_image_file(
        support.make_raw_image(tmp_path / 'g.img'))
    name = images.image_name(datastore, '8.4')
    image = images.ensure_image(admin, image_file, name=name,
                                tags=['trove', datastore])
    version = datastores.register_version(
        trove, datastore=datastore, version='8.4', manager='mysql',
        image_id=image.id)
    default = datastores.set_default_version(trove, datastore, '8.4')
    assert (image.action, version.action, default.default) == (
        'uploaded', 'created', True)
    assert images.ensure_image(admin, image_file, name=name).action == \
        'reused'


def test_openrc_environment_without_clouds_yaml(local_cloud, tmp_path):
    """devstack's openrc: OS_* variables only, no --os-cloud."""
    import yaml

    clouds = yaml.safe_load(local_cloud.clouds_yaml.read_text())
    cloud = clouds['clouds'][local_cloud.admin_cloud]
    auth_values = cloud['auth']
    env = local_cloud.env(
        OS_CLIENT_CONFIG_FILE=str(tmp_path / 'none.yaml'),
        OS_AUTH_URL=auth_values['auth_url'],
        OS_USERNAME=auth_values['username'],
        OS_PASSWORD=auth_values['password'],
        OS_PROJECT_NAME=auth_values['project_name'],
        OS_USER_DOMAIN_NAME=auth_values['user_domain_name'],
        OS_PROJECT_DOMAIN_NAME=auth_values['project_domain_name'],
        OS_REGION_NAME=cloud['region_name'],
        OS_IDENTITY_API_VERSION='3')
    datastore = support.unique('mysql')
    image = support.make_raw_image(tmp_path / 'g.img')
    result = helpers.run(
        'load-trove-image', image, '--datastore', datastore, '--version',
        '8.4', '--manager', 'mysql', '-f', 'value', '-c', 'version_action',
        env=env)
    assert result.stdout.strip() == 'created'


def test_a_reused_image_is_seen_as_widely_as_asked(local_cloud, admin,
                                                   tmp_path):
    """provision loads an image private, the devstack plugin the same file
    public (one Glance image, named after the file, serves both): the
    reused image becomes public, and a private load after it leaves it
    public."""
    datastore, version = support.unique('mysql'), '8.4'
    image = support.make_raw_image(tmp_path / 'shared.img')
    seen = []
    for visibility in ('private', 'public', 'private'):
        _, loaded = support.load(local_cloud, image, datastore, version,
                                 '--manager', 'mysql', '--visibility',
                                 visibility)
        shown = support.cli_json(local_cloud, 'image', 'show',
                                 loaded['image_id'])
        seen.append((loaded['image_id'], shown['visibility']))
    assert [visibility for _, visibility in seen] == [
        'private', 'public', 'public']
    assert len({image_id for image_id, _ in seen}) == 1
