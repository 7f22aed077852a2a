"""Unit tests for trovestack.orchestration.doctor (stubbed cloud)."""

import types

from trovestack.cloud import trove_source
from trovestack.common.results import Row
from trovestack.orchestration import doctor


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


# The guest agent of an image against the control plane's Trove

RELEASE = trove_source.TroveSource(version='26.0.0')


def _agent_image(**properties):
    return types.SimpleNamespace(id='img-1', name='guest', status='active',
                                 tags=['trove'], properties=properties)


def _tree(tmp_path, commit='c0ffee' * 6 + 'c0ff', dirty=False):
    (tmp_path / 'setup.cfg').write_text('[metadata]\nname = trove\n')
    (tmp_path / 'trove').mkdir(exist_ok=True)
    (tmp_path / 'trove' / '__init__.py').write_text('')
    return trove_source.TroveSource(version='26.1.0.dev3',
                                    path=str(tmp_path), commit=commit,
                                    dirty=dirty)


def _control(source, where='test'):
    return doctor.ControlPlane(source, where)


def test_agent_of_the_control_planes_release_is_ok():
    row = doctor.check_agent('a', _agent_image(
        trove_agent_source='release:26.0.0', trove_agent_version='26.0.0'),
        _control(RELEASE))
    assert row.action == doctor.OK
    assert 'release:26.0.0 (trove 26.0.0)' in row.detail


def test_image_without_agent_properties_is_unknown_not_a_problem():
    row = doctor.check_agent('a', _agent_image(), _control(RELEASE))
    assert row.action == doctor.INFO
    assert 'unknown' in row.detail
    assert doctor.problems([row]) == doctor.warnings([row]) == []


def test_unknown_control_plane_is_info():
    row = doctor.check_agent(
        'a', _agent_image(trove_agent_source='release:26.0.0'),
        _control(None, 'not the local cloud of this machine'))
    assert row.action == doctor.INFO
    assert "control plane's Trove is unknown (not the local cloud" in \
        row.detail


def test_agent_from_another_trove_warns(tmp_path):
    tree = _tree(tmp_path)
    row = doctor.check_agent(
        'a', _agent_image(trove_agent_source='release:26.0.0'),
        _control(tree))
    assert row.action == doctor.WARNING
    assert f'the control plane runs {tree.identity()}' in row.detail
    assert 'trovestack provision' in row.detail
    assert doctor.problems([row]) == [] and doctor.warnings([row]) == [row]
    # the other way round: a tree's agent on a release control plane
    row = doctor.check_agent(
        'a', _agent_image(trove_agent_source=tree.identity()),
        _control(RELEASE))
    assert row.action == doctor.WARNING
    assert 'runs release:26.0.0' in row.detail


def test_same_tree_changed_since_the_build_warns(tmp_path):
    tree = _tree(tmp_path, dirty=True)
    digest = doctor.tree_digest(tree.path)
    image = _agent_image(trove_agent_source=tree.identity(),
                         trove_agent_digest=digest)
    assert doctor.check_agent('a', image, _control(tree)).action == doctor.OK
    (tmp_path / 'trove' / 'guest.py').write_text('changed = True\n')
    row = doctor.check_agent('a', image, _control(tree))
    assert row.action == doctor.WARNING
    assert f'{tree.path}, which changed since the image was built' in \
        row.detail
    # a digest recorded with a prefix compares by its hex part
    image = _agent_image(trove_agent_source=tree.identity(),
                         trove_agent_digest='local:'
                         + doctor.tree_digest(tree.path))
    assert doctor.check_agent('a', image, _control(tree)).action == doctor.OK


def test_git_build_of_the_clean_trees_commit_is_the_same_code(tmp_path):
    tree = _tree(tmp_path)
    image = _agent_image(
        trove_agent_source=f'git:https://opendev.org/openstack/trove@'
                           f'{tree.commit}')
    assert doctor.check_agent('a', image, _control(tree)).action == doctor.OK
    dirty = _tree(tmp_path, dirty=True)
    assert doctor.check_agent('a', image, _control(dirty)).action == \
        doctor.WARNING
    other = _tree(tmp_path, commit='1' * 40)
    assert doctor.check_agent('a', image, _control(other)).action == \
        doctor.WARNING


def test_each_checked_versions_image_gets_an_agent_check(tmp_path):
    image = _agent_image(trove_agent_source='release:26.0.0')
    checks = doctor.check_datastores(
        _conn([image]), [_version('8.4', default=True)],
        control=_control(RELEASE))
    assert [(c.name, c.action) for c in checks] == [
        ('datastore mysql', doctor.OK), ('datastore mysql image', doctor.OK),
        ('datastore mysql guest agent', doctor.OK)]
    # no agent check where the image is missing
    checks = doctor.check_datastores(
        _conn(), [_version('8.4', default=True)], control=_control(RELEASE))
    assert [c.name for c in checks] == ['datastore mysql',
                                        'datastore mysql image']


def test_control_plane_from_a_tree_or_unknown(tmp_path):
    (tmp_path / 'src').mkdir()
    tree = _tree(tmp_path / 'src')
    conn = types.SimpleNamespace(config=types.SimpleNamespace(
        config={'auth': {'auth_url': 'http://192.0.2.1:5000/v3'}}))
    given = doctor.control_plane(conn, trove_dir=tree.path)
    assert given.source.path == tree.path
    assert given.where == f'--trove-dir {tree.path}'
    # no local cloud in this state directory: unknown, and how to say it
    unknown = doctor.control_plane(conn, state_dir=tmp_path / 'state')
    assert unknown.source is None
    assert '--trove-dir $TROVE_DIR' in unknown.where
