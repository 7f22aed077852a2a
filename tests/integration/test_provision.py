"""trovestack provision against the real local control plane."""

import subprocess

import pytest

from tests.helpers import run
from tests.helpers import run_json
from trovestack.orchestration import steps


@pytest.fixture(scope='module')
def guest_image(tmp_path_factory):
    path = tmp_path_factory.mktemp('images') / 'trove-guest-provision.qcow2'
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', str(path),
                    '32M'], check=True)
    return path


def _by_step(rows):
    return [(row['Step'], row['Subject'], row['Result']) for row in rows]


def test_provision_converges_and_real_clients_see_it(local_cloud,
                                                     guest_image, tmp_path):
    env = local_cloud.env()
    tempest_conf = tmp_path / 'tempest.conf'
    args = ('trovestack', 'provision', 'mysql:8.4', 'mariadb:10.11',
            '--image', guest_image, '--os-cloud', local_cloud.admin_cloud,
            '--tempest-conf', tempest_conf)
    first = _by_step(run_json(*args, env=env))
    assert [step for step, _, _ in first] == [
        'load-image', 'load-image', 'flavors', 'test-config']
    assert 'default' in first[0][2]
    assert 'image reused' in first[1][2], 'one image serves both datastores'

    again = _by_step(run_json(*args, env=env))
    assert 'image reused' in again[0][2] and 'version unchanged' in again[0][2]
    assert again[2][2].endswith('unchanged') and 'created' not in again[2][2]

    name = steps.image_name(str(guest_image))
    images = run_json('openstack', '--os-cloud', local_cloud.admin_cloud,
                      'image', 'list', '--name', name, env=env)
    assert len(images) == 1
    versions = run_json('openstack', '--os-cloud', local_cloud.admin_cloud,
                        'datastore', 'version', 'list', 'mysql', env=env)
    assert [v['Name'] for v in versions].count('8.4') == 1
    mysql = run_json('openstack', '--os-cloud', local_cloud.admin_cloud,
                     'datastore', 'show', 'mysql', env=env)
    assert '8.4' in str(mysql)
    text = tempest_conf.read_text()
    assert 'enabled_datastores = mysql,mariadb' in text
    assert (tmp_path / 'trove-test.json').exists()


def test_provision_on_the_local_cloud_by_state_dir(local_cloud, guest_image):
    rows = _by_step(run_json(
        'trovestack', 'provision', 'mysql:8.4', '--image', guest_image,
        '--state-dir', local_cloud.state_dir, env=local_cloud.env()))
    assert rows[0] == ('cloud up', str(local_cloud.state_dir), 'running')
    assert (local_cloud.state_dir / 'tempest.conf').exists()


def test_dry_run_lists_steps_and_changes_nothing(local_cloud, tmp_path):
    rows = _by_step(run_json(
        'trovestack', 'provision', 'postgresql', '--dry-run',
        '--os-cloud', local_cloud.admin_cloud, '--tempest-conf',
        tmp_path / 'tempest.conf', env=local_cloud.env()))
    assert [r[0] for r in rows] == ['build-image', 'load-image', 'flavors',
                                    'test-config']
    assert {r[2] for r in rows} == {'would run'}
    assert not (tmp_path / 'tempest.conf').exists()


@pytest.mark.parametrize('args, message', [
    (('nosuchdb',), "no default version for unknown datastore 'nosuchdb'"),
    (('mysql:8.4', '--image', '/nonexistent.qcow2'),
     'image file /nonexistent.qcow2 does not exist'),
])
def test_bad_input_is_one_line(local_cloud, args, message):
    result = run('trovestack', 'provision', *args, '--os-cloud',
                 local_cloud.admin_cloud, env=local_cloud.env(), check=False)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(message), lines


def test_one_image_build_serves_every_datastore(local_cloud, tmp_path):
    rows = _by_step(run_json(
        'trovestack', 'provision', 'mariadb:11.8', 'postgresql:17',
        '--dry-run', '--os-cloud', local_cloud.admin_cloud,
        env=local_cloud.env()))
    assert [r[0] for r in rows] == ['build-image', 'load-image',
                                    'load-image', 'flavors', 'test-config']
    assert rows[1][1].endswith('--default')
    assert rows[2][1].endswith('--default')


def test_the_local_cloud_selected_by_name_is_provisioned_as_local(
        local_cloud, guest_image):
    """After ``eval "$(trovestack cloud env)"`` (OS_CLOUD names the local
    cloud's own entry) provision takes the cloud for the local one: it
    keeps it up, writes tempest.conf in its state directory, and a second
    run changes nothing."""
    env = {**local_cloud.env(), 'OS_CLOUD': local_cloud.admin_cloud}
    args = ('trovestack', 'provision', 'mysql:8.4', '--image', guest_image,
            '--state-dir', local_cloud.state_dir)
    first = _by_step(run_json(*args, env=env))
    assert first[0] == ('cloud up', str(local_cloud.state_dir), 'running')
    again = _by_step(run_json(*args, env=env))
    assert again[0][0] == 'cloud up'
    assert 'version unchanged' in again[1][2]
    assert all('created' not in result and 'updated' not in result
               for _, _, result in again[1:]), again
    assert (local_cloud.state_dir / 'tempest.conf').exists()
