"""Unit tests for trovestack.doctor (stubbed cloud)."""

import types

from trovestack import doctor
from trovestack.common.results import Row


def _version(name, *, default=False, active=True, image='img-1',
             datastore='mysql', image_tags=()):
    return types.SimpleNamespace(
        id=f'id-{name}', name=name, default=default, active=active,
        image=image, image_tags=list(image_tags), datastore_name=datastore)


def _image(status='active', tags=('trove',)):
    return types.SimpleNamespace(id='img-1', name='guest', status=status,
                                 tags=list(tags))


class FakeImages:
    def __init__(self, images):
        self._images = images

    def find_image(self, image_id):
        return next((i for i in self._images if i.id == image_id), None)

    def images(self, tag=None):
        return [i for i in self._images if tag in i.tags]


def _conn(images=()):
    return types.SimpleNamespace(image=FakeImages(list(images)))


def test_default_active_version_with_good_image_is_ok():
    checks = doctor.check_datastores(
        _conn([_image()]), [_version('8.4', default=True)])
    assert [c.action for c in checks] == [doctor.OK, doctor.OK]


def test_unregistered_datastore_names_the_registered_ones():
    checks = doctor.check_datastores(
        _conn(), [_version('8.4', default=True)], [('redis', None)])
    assert checks[0].action == doctor.MISSING
    assert 'registered: mysql' in checks[0].detail


def test_inactive_version_fails_and_says_how_to_fix():
    checks = doctor.check_datastores(
        _conn([_image()]), [_version('8.4', active=False)],
        [('mysql', '8.4')])
    assert checks[0].action == doctor.FAILED
    assert 'trovestack activate mysql 8.4' in checks[0].detail


def test_version_whose_image_is_gone_is_missing():
    checks = doctor.check_datastores(
        _conn(), [_version('8.4', default=True)])
    assert checks[1].action == doctor.MISSING
    assert 'not in Glance' in checks[1].detail


def test_image_not_tagged_trove_fails():
    checks = doctor.check_datastores(
        _conn([_image(tags=())]), [_version('8.4', default=True)])
    assert checks[1].action == doctor.FAILED


def test_no_datastores_at_all_is_missing():
    assert doctor.check_datastores(_conn(), [])[0].action == doctor.MISSING


def test_queued_guest_images_fail():
    checks = doctor.check_guest_images(_conn([_image(status='queued')]))
    assert checks[0].action == doctor.FAILED


def test_tempest_conf_checks(tmp_path):
    conf = tmp_path / 'tempest.conf'
    conf.write_text('[service_available]\ntrove = True\n'
                    '[database]\nenabled_datastores = mysql,redis\n'
                    'flavor_id = d3\n')
    checks = doctor.check_tempest_conf(conf, {'mysql'})
    assert [c.action for c in checks] == [doctor.OK, doctor.FAILED]
    assert 'redis' in checks[1].detail
    assert doctor.tempest_flavor_ids(conf) == [('flavor_id', 'd3')]


def test_missing_tempest_conf_is_missing(tmp_path):
    checks = doctor.check_tempest_conf(tmp_path / 'nope.conf', set())
    assert checks[0].action == doctor.MISSING
    assert 'test-config' in checks[0].detail


def test_problems_ignores_ok_and_skipped():
    checks = [Row('check', 'a', doctor.OK), Row('check', 'b', doctor.SKIPPED),
              Row('check', 'c', doctor.MISSING)]
    assert [c.name for c in doctor.problems(checks)] == ['c']
