"""trovestack.orchestration.provision: the plan of steps, without a cloud."""

import pytest

from trovestack.common.errors import UserError
from trovestack.orchestration import provision


def _request(tmp_path, *datastores, **kwargs):
    kwargs.setdefault('os_cloud', 'somewhere')
    kwargs.setdefault('tempest_conf', str(tmp_path / 'tempest.conf'))
    return provision.ProvisionRequest(datastores=list(datastores), **kwargs)


def test_one_container_image_serves_every_datastore(tmp_path):
    steps = provision.plan(_request(tmp_path, ('mysql', '8.4'),
                                    ('mariadb', None)))
    assert [s.name for s in steps] == ['build-image', 'load-image',
                                       'load-image', 'flavors', 'test-config']
    assert steps[1].describe.endswith('--version 8.4 --image-name '
                                      '<built image> --default')
    assert '--datastore mariadb:11.8' in steps[-1].describe




def test_a_given_image_is_not_built(tmp_path):
    image = tmp_path / 'guest.qcow2'
    image.write_bytes(b'x')
    rows = provision.provision(
        _request(tmp_path, ('mysql', '8.4'), image=str(image)), dry_run=True)
    assert [(r.kind, r.action) for r in rows] == [
        ('load-image', provision.WOULD_RUN), ('flavors', provision.WOULD_RUN),
        ('test-config', provision.WOULD_RUN)]
    assert rows[0].name.startswith(str(image))


@pytest.mark.parametrize('datastores, kwargs, message', [
    ([('nosuchdb', None)], {}, 'no default version for unknown datastore'),
    ([('mysql', '8.4')], {'image': '/nonexistent.qcow2'},
     'image file /nonexistent.qcow2 does not exist'),
])
def test_bad_requests_fail_before_any_step(tmp_path, datastores, kwargs,
                                           message):
    with pytest.raises(UserError, match=message):
        provision.plan(_request(tmp_path, *datastores, **kwargs))


def test_first_version_of_each_datastore_is_its_default(tmp_path):
    """The same rule as the devstack plugin's
    (trovestack.orchestration.devstack)."""
    steps = provision.plan(_request(tmp_path, ('mysql', '8.4'),
                                    ('postgresql', '17'), ('mysql', '8.0')))
    loads = [s.describe for s in steps if s.name == 'load-image']
    assert [d.endswith('--default') for d in loads] == [True, True, False]


def _clouds_yaml(path, auth_url):
    path.write_text(
        'clouds:\n  mine:\n    auth:\n'
        f'      auth_url: {auth_url}\n      username: admin\n'
        '      password: x\n      project_name: admin\n'
        '      user_domain_name: Default\n'
        '      project_domain_name: Default\n')
    return path


def test_the_local_cloud_is_recognised_however_it_is_named(tmp_path,
                                                          monkeypatch):
    """``cloud env`` sets OS_CLOUD to the local cloud's entry: provision
    takes it for the local cloud (same identity endpoint), and a cloud
    elsewhere for what it is."""
    from trovestack.cloud import configs
    from trovestack.cloud import layout

    state_dir = tmp_path / 'state'
    cloud_layout = layout.Layout(state_dir)
    state = layout.CloudState.new(25000, tmp_path / 'c.yaml', ['keystone'])
    cloud_layout.root.mkdir()
    cloud_layout.save_state(state)
    clouds = tmp_path / 'clouds.yaml'
    monkeypatch.setenv('OS_CLIENT_CONFIG_FILE', str(clouds))

    def request(name):
        return provision.ProvisionRequest(
            datastores=[('mysql', None)], os_cloud=name,
            state_dir=str(state_dir))

    _clouds_yaml(clouds, configs.identity_url(state))
    assert provision.names_local_cloud(request('mine'))
    assert not provision.names_local_cloud(request('absent'))
    assert not provision.names_local_cloud(request(None))
    _clouds_yaml(clouds, 'http://127.0.0.1:1/v3')
    assert not provision.names_local_cloud(request('mine'))
