"""Convergence under concurrency and crashes, against the real local cloud.

Every scenario ends with the same check (tests.reliability_support
.leftovers): exactly one active image for the content, nothing queued or
saving under its name, one datastore version per name, pointing at it.
Crashes are real: the process sends itself SIGKILL at a named point
(tests.crashpoints), so no cleanup code of ours runs.
"""

import hashlib
import signal
import subprocess
import sys
import time

import pytest

from tests import helpers
from tests import load_image_support as support
from tests import reliability_support as rel


def _sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _name(datastore, version='8.4'):
    return f'trove-guest-debian-bookworm-{datastore}-{version}'


def _assert_converged(admin, trove, image, datastore, version='8.4'):
    assert rel.leftovers(admin, trove, name=_name(datastore, version),
                         sha256=_sha256(image), datastore=datastore,
                         versions=[version]) == []


def test_three_concurrent_loads_of_one_file(local_cloud, admin, trove,
                                            tmp_path):
    datastore = support.unique('mysql')
    image = support.make_raw_image(tmp_path / 'guest.img', 16 * support.MiB)
    argv = rel.load_argv(image, datastore, '8.4', local_cloud.admin_cloud,
                         '--default')
    results = rel.concurrent_loads(argv, local_cloud.env(), 3)
    assert [code for code, _, _ in results] == [0, 0, 0], results
    outputs = [data for _, data, _ in results]
    assert len({data['image_id'] for data in outputs}) == 1
    assert sorted(data['image_action'] for data in outputs).count(
        'uploaded') == 1
    assert sorted(data['version_action'] for data in outputs).count(
        'created') == 1
    _assert_converged(admin, trove, image, datastore)
    assert trove.datastores.get(datastore).default_version == \
        outputs[0]['version_id']


@pytest.mark.parametrize('point', ['hashing', 'created', 'uploading',
                                   'uploaded', 'registering'])
def test_killed_run_then_rerun_converges(local_cloud, admin, trove, tmp_path,
                                         point):
    datastore = support.unique('mysql')
    image = support.make_raw_image(tmp_path / 'guest.img', 16 * support.MiB)
    argv = rel.load_argv(image, datastore, '8.4', local_cloud.admin_cloud)
    code, _, err = rel.finish(rel.start_load(argv, local_cloud.env(), point))
    assert code == -signal.SIGKILL, err
    left = rel.glance_images(admin, _name(datastore))
    expected = {'hashing': set(), 'created': {'queued'},
                'uploading': {'queued', 'saving'}, 'uploaded': {'active'},
                'registering': {'active'}}[point]
    assert len(left) == (1 if expected else 0)
    assert {i['status'] for i in left} <= expected

    _, data = support.load(local_cloud, image, datastore, '8.4',
                           '--manager', 'mysql', *rel.API_TIMEOUT)
    assert data['version_action'] == 'created'
    if point in ('uploaded', 'registering'):
        assert (data['image_action'], data['image_id']) == (
            'reused', left[0]['id'])
    _assert_converged(admin, trove, image, datastore)
    # And a run after that changes nothing.
    _, again = support.load(local_cloud, image, datastore, '8.4',
                            '--manager', 'mysql', *rel.API_TIMEOUT)
    assert (again['image_action'], again['version_action'],
            again['image_id']) == ('reused', 'unchanged', data['image_id'])


def test_killed_runs_of_a_new_build_keep_the_old_image(
        local_cloud, admin, trove, tmp_path):
    """A new build killed mid-upload: the version keeps the old image
    until a run completes, then moves to the new one."""
    datastore = support.unique('mysql')
    image = support.make_raw_image(tmp_path / 'guest.img', 8 * support.MiB)
    _, first = support.load(local_cloud, image, datastore, '8.4',
                            '--manager', 'mysql', *rel.API_TIMEOUT)
    support.make_raw_image(image, 8 * support.MiB)
    argv = rel.load_argv(image, datastore, '8.4', local_cloud.admin_cloud)
    for point in ('created', 'uploading'):
        code, _, _ = rel.finish(rel.start_load(argv, local_cloud.env(),
                                               point))
        assert code == -signal.SIGKILL
        assert trove.mgmt_ds_versions.get(first['version_id']).image == \
            first['image_id']
    _, data = support.load(local_cloud, image, datastore, '8.4',
                           '--manager', 'mysql', *rel.API_TIMEOUT)
    assert (data['image_action'], data['version_action']) == (
        'uploaded', 'updated')
    _assert_converged(admin, trove, image, datastore)
    assert first['image_id'] in support.images_named(admin, _name(datastore))


def test_a_live_upload_is_waited_for_not_removed(local_cloud, admin, trove,
                                                  tmp_path):
    datastore = support.unique('mysql')
    image = support.make_raw_image(tmp_path / 'guest.img', 16 * support.MiB)
    argv = rel.load_argv(image, datastore, '8.4', local_cloud.admin_cloud)
    slow = rel.start_load(argv, local_cloud.env(), 'uploading', 'stop')
    try:
        rel.wait_stopped(slow)
        (partial,) = rel.glance_images(admin, _name(datastore))
        second = rel.start_load(argv, local_cloud.env())
        time.sleep(5)
        assert second.poll() is None, 'the second run must wait'
        assert [i['id'] for i in rel.glance_images(
            admin, _name(datastore))] == [partial['id']]
    finally:
        slow.send_signal(signal.SIGCONT)
    code, first_data, err = rel.finish(slow)
    assert code == 0, err
    code, second_data, err = rel.finish(second)
    assert code == 0, err
    assert first_data['image_id'] == second_data['image_id'] == partial['id']
    assert second_data['image_action'] == 'reused'
    _assert_converged(admin, trove, image, datastore)


def test_partial_image_from_another_host(local_cloud, admin, tmp_path):
    """Another machine's processes cannot be seen: its partial image is
    left alone while recent, and removed once older than stale_after."""
    from load_image import images
    from load_image import uploader

    image_file = images.load_image_file(
        support.make_raw_image(tmp_path / 'guest.img', support.MiB))
    name = _name(support.unique('mysql'))
    elsewhere = uploader.Uploader('build-host-7', 'other-boot/pid:[1]', 4242,
                                  '99')
    response = admin.image.post('/images', json={
        'name': name, 'disk_format': 'raw', 'container_format': 'bare',
        images.SHA256_PROPERTY: image_file.sha256,
        **elsewhere.properties()})
    foreign = response.json()['id']
    with pytest.raises(images.ImageUploadError,
                       match='being uploaded by build-host-7 pid 4242'):
        images.ensure_image(admin, image_file, name=name, timeout=2)
    assert [i['id'] for i in rel.glance_images(admin, name)] == [foreign]
    time.sleep(2)
    result = images.ensure_image(admin, image_file, name=name,
                                 stale_after=1)
    assert (result.action, result.removed) == ('uploaded', (foreign,))
    assert [(i['id'], i['status']) for i in rel.glance_images(
        admin, name)] == [(result.id, 'active')]


def test_twenty_provision_runs(local_cloud, admin, trove, tmp_path):
    image = tmp_path / 'trove-guest-reliability.qcow2'
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', str(image),
                    '32M'], check=True)
    args = ('trovestack', 'provision', 'mysql:8.4r', 'mariadb:10.11r',
            '--image', image, '--os-cloud', local_cloud.admin_cloud,
            *rel.API_TIMEOUT, '--tempest-conf', tmp_path / 'tempest.conf')
    flavors = None
    for run in range(20):
        helpers.run_json(*args, env=local_cloud.env())
        for datastore, version in (('mysql', '8.4r'), ('mariadb', '10.11r')):
            assert rel.leftovers(
                admin, trove, name='trove-guest-reliability',
                sha256=_sha256(image), datastore=datastore,
                versions=[version]) == [], f'run {run + 1}'
        if flavors is None:
            flavors = rel.flavor_set(admin)
        assert rel.flavor_set(admin) == flavors, f'run {run + 1}'


# -- the image builder ----------------------------------------------------

_BUILD_SCRIPT = '''
import hashlib, os, pathlib, signal, sys
from trovestack.common import files
from trovestack.images.guest import builder, dib, guest_agent

output, cache, kill_at = sys.argv[1:4]

def fake_dib(args, env, log_path, progress):
    """Writes the image and its .sha256 as DIB does (or dies half-way)."""
    target = pathlib.Path(args[args.index('-o') + 1])
    image = target.with_name(target.name + '.qcow2')
    image.write_bytes(os.urandom(4096))
    if kill_at == 'dib':
        os.kill(os.getpid(), signal.SIGKILL)
    digest = hashlib.sha256(image.read_bytes()).hexdigest()
    pathlib.Path(str(image) + '.sha256').write_text(f'{digest}  x\\n')
    return 0.0

real_write, real_replace = files.write_atomic, os.replace

def write_atomic(path, data, mode=None):
    if kill_at == 'sidecar' and path == builder.sidecar_path(output):
        os.kill(os.getpid(), signal.SIGKILL)
    return real_write(path, data, mode)

def replace(source, target):
    if kill_at == 'replace' and str(target) == output:
        os.kill(os.getpid(), signal.SIGKILL)
    return real_replace(source, target)

dib.run = fake_dib
files.write_atomic = write_atomic
os.replace = replace
builder._check_host = lambda plan, shims: None
guest_agent.prepare = lambda *args, **kwargs: pathlib.Path(cache) / 'wheels'
result = builder.build_image(builder.BuildRequest(
    output=output, cache_dir=cache, mirror='http://mirror.invalid/debian',
    force=kill_at != 'skip'))
print(result.skipped)
'''


def _build(tmp_path, output, kill_at):
    return subprocess.run(
        [sys.executable, '-c', _BUILD_SCRIPT, str(output),
         str(tmp_path / 'cache'), kill_at], capture_output=True, text=True,
        timeout=120)


@pytest.mark.parametrize('kill_at, skipped', [
    ('dib', True),        # nothing published: the previous image stands
    ('replace', True),    # about to put the new image in place
    ('sidecar', False),   # new image in place, its record not yet
])
def test_killed_image_build_keeps_the_previous_image(tmp_path, kill_at,
                                                      skipped):
    from trovestack.images.guest import builder

    output = tmp_path / 'out' / 'trove-guest.qcow2'
    assert _build(tmp_path, output, 'none').returncode == 0
    previous = output.read_bytes()
    sidecar = builder.read_sidecar(output)

    killed = _build(tmp_path, output, kill_at)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    if skipped:  # the published image and its records stay
        assert output.read_bytes() == previous
        assert builder.read_sidecar(output) == sidecar
    assert [p.name for p in output.parent.glob('.build-*')] != []

    # The next build is not fooled by what the killed one left behind, and
    # removes its work directory.
    again = _build(tmp_path, output, 'skip')
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == str(skipped)
    assert builder.is_up_to_date(output, builder.read_sidecar(output)[
        'build_hash'])
    digest = hashlib.sha256(output.read_bytes()).hexdigest()
    assert builder.read_sidecar(output)['sha256'] == digest
    assert (output.parent / (output.name + '.sha256')).read_text().split()[
        0] == digest
    assert list(output.parent.glob('.build-*')) == []
