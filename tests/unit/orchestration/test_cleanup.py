"""Unit tests for trovestack.orchestration.cleanup (stubbed cloud)."""

import types

from trovestack.orchestration import cleanup

MARKED = {'trove_datastore': 'mysql', 'trove_datastore_version': '8.4'}


def _image(image_id, properties, tags=('trove',)):
    return types.SimpleNamespace(id=image_id, name=f'name-{image_id}',
                                 tags=list(tags), properties=properties)


def test_is_ours_needs_the_tag_and_every_marker():
    assert cleanup.is_ours(_image('a', MARKED))
    assert not cleanup.is_ours(_image('b', {}))
    assert not cleanup.is_ours(_image('c', {'trove_datastore': 'mysql'}))
    assert not cleanup.is_ours(_image('d', MARKED, tags=()))


def test_plan_images_keeps_foreign_and_filters_by_datastore():
    images = [_image('ours', MARKED), _image('foreign', {}),
              _image('other', {**MARKED, 'trove_datastore': 'redis'})]
    conn = types.SimpleNamespace(image=types.SimpleNamespace(
        images=lambda tag: images, delete_image=None))
    items, ours = cleanup.plan_images(conn, ['mysql'])
    assert ours == {'ours'}
    assert {(i.id, i.action) for i in items} == {
        ('ours', cleanup.WOULD_DELETE), ('foreign', cleanup.KEPT)}


def test_image_is_kept_when_its_version_cannot_be_deleted():
    def refuse():
        raise RuntimeError('version in use')

    version = cleanup.Item('datastore version', 'mysql 8.4', 'v1',
                           cleanup.WOULD_DELETE, uses='img', delete=refuse)
    deleted = []
    image = cleanup.Item('image', 'guest', 'img', cleanup.WOULD_DELETE,
                         delete=lambda: deleted.append('img'))
    cleanup.link_images([image], [version])
    assert cleanup.execute([version, image]) == 1
    assert version.action == cleanup.FAILED
    assert 'version in use' in version.detail
    assert image.action == cleanup.KEPT and deleted == []


def test_plan_datastores_deletes_a_datastore_only_when_emptied():
    def version(name, datastore, image):
        return types.SimpleNamespace(id=f'{datastore}-{name}', name=name,
                                     datastore_name=datastore,
                                     datastore_id=f'ds-{datastore}',
                                     image=image)

    versions = [version('1', 'a', 'ours'), version('1', 'b', 'ours'),
                version('2', 'b', 'theirs')]
    trove = types.SimpleNamespace(
        mgmt_ds_versions=types.SimpleNamespace(list=lambda: versions,
                                               delete=None),
        datastores=types.SimpleNamespace(delete=None))
    items = cleanup.plan_datastores(trove, {'ours'})
    assert [(i.resource_type, i.name) for i in items] == [
        ('datastore version', 'a 1'), ('datastore', 'a'),
        ('datastore version', 'b 1')]
