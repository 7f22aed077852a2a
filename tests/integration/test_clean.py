"""trovestack clean against the real local control plane: only ours goes."""

import json

from tests import helpers
from tests import load_image_support as support


def _clean(local_cloud, *args):
    result = helpers.run('trovestack', 'clean', '--os-cloud',
                         local_cloud.admin_cloud, *args, '-f', 'json',
                         env=local_cloud.env())
    return json.loads(result.stdout)


def _rows(rows, resource_type):
    return {row['Name']: row for row in rows
            if row['Resource Type'] == resource_type}


def test_clean_removes_only_what_trovestack_made(local_cloud, tmp_path):
    admin = local_cloud.connection()
    datastore = support.unique('clean')
    image_file = support.make_raw_image(tmp_path / 'guest.img')
    _, loaded = support.load(local_cloud, image_file, datastore, '1.0',
                             '--manager', 'mysql', '--default')
    # Someone else's image tagged trove, without our marker properties.
    foreign = admin.image.create_image(
        name=support.unique('foreign'), filename=str(image_file),
        disk_format='raw', container_format='bare', tags=['trove'],
        wait=True)
    # A flavor with a test flavor's name but another spec is not ours.
    helpers.run('trovestack', 'flavors', '--flavor-set', 'redstack',
                '--os-cloud', local_cloud.admin_cloud, env=local_cloud.env())
    admin.compute.delete_flavor('10')
    odd = admin.compute.create_flavor(name='test.tiny-4', id='10', ram=999,
                                      disk=4, vcpus=1)
    try:
        planned = _clean(local_cloud, '--dry-run', '--datastore', datastore,
                         '--flavor-set', 'redstack')
        assert _rows(planned, 'datastore version')[f'{datastore} 1.0'][
            'Action'] == 'would-delete'
        assert _rows(planned, 'datastore')[datastore]['Action'] == \
            'would-delete'
        images = _rows(planned, 'image')
        assert images[loaded['image_name']]['Action'] == 'would-delete'
        assert images[foreign.name]['Action'] == 'kept'
        flavors = _rows(planned, 'flavor')
        assert flavors['test.tiny-4']['Action'] == 'kept'
        assert 'ram 999!=768' in flavors['test.tiny-4']['Detail']
        assert flavors['test.small-6']['Action'] == 'would-delete'
        assert admin.image.find_image(loaded['image_id']) is not None

        done = _clean(local_cloud, '--datastore', datastore,
                      '--flavor-set', 'redstack')
        actions = {(row['Resource Type'], row['Name']): row['Action']
                   for row in done}
        assert actions[('image', loaded['image_name'])] == 'deleted'
        assert actions[('image', foreign.name)] == 'kept'
        assert actions[('datastore', datastore)] == 'deleted'
        assert actions[('flavor', 'test.tiny-4')] == 'kept'
        assert actions[('flavor', 'test.small-6')] == 'deleted'

        assert admin.image.find_image(loaded['image_id']) is None
        assert admin.image.find_image(foreign.id) is not None
        assert admin.compute.find_flavor('15') is None
        assert admin.compute.get_flavor('10').ram == 999
        versions = support.cli_json(local_cloud, 'datastore', 'list')
        assert datastore not in {row['Name'] for row in versions}

        again = _clean(local_cloud, '--datastore', datastore,
                       '--flavor-set', 'redstack')
        assert {row['Action'] for row in again} == {'kept'}
    finally:
        admin.image.delete_image(foreign, ignore_missing=True)
        admin.compute.delete_flavor(odd, ignore_missing=True)
        # Leave the shared cloud's test flavors as other tests expect them.
        helpers.run('trovestack', 'flavors', '--flavor-set', 'redstack',
                    '--os-cloud', local_cloud.admin_cloud,
                    env=local_cloud.env())
