"""verify-image's input checks, made before anything starts."""

import json

import pytest

from trovestack.common.errors import UserError
from trovestack.images.verify import run


@pytest.fixture
def image(tmp_path):
    path = tmp_path / 'guest.qcow2'
    path.write_bytes(b'')
    record = {'embedded_datastore_images': [{'name': 'mariadb:11.8'}]}
    (tmp_path / 'guest.qcow2.build.json').write_text(json.dumps(record))
    return path


def test_embedded_image_passes(image):
    run.check_datastore_image(image, 'mariadb', '11.8', use_registry=False)


def test_buildable_image_passes_with_registry(image):
    run.check_datastore_image(image, 'postgresql', '17', use_registry=True)


def test_missing_embedded_image_names_the_rebuild(image):
    with pytest.raises(UserError) as e:
        run.check_datastore_image(image, 'postgresql', '17',
                                  use_registry=False)
    assert 'no embedded datastore image postgresql:17' in str(e.value)
    assert '--embed-datastore-image postgresql:17' in str(e.value)
    assert '--registry' in str(e.value)


def test_unbuildable_image_does_not_suggest_a_rebuild(image):
    with pytest.raises(UserError) as e:
        run.check_datastore_image(image, 'mysql', '8.4', use_registry=False)
    assert 'none can be built here' in str(e.value)
    assert '--embed-datastore-image' not in str(e.value)


def test_unbuildable_image_with_registry(image):
    with pytest.raises(UserError, match="Unknown datastore 'mysql'"):
        run.check_datastore_image(image, 'mysql', '8.4', use_registry=True)


def test_image_without_build_record(tmp_path):
    path = tmp_path / 'plain.qcow2'
    path.write_bytes(b'')
    with pytest.raises(UserError, match='no embedded datastore image'):
        run.check_datastore_image(path, 'mariadb', '11.8',
                                  use_registry=False)
