import json
import os
import pathlib
import shutil
import subprocess
import time

import pytest

from trovestack.common import workdirs
from trovestack.images.guest import builder
from trovestack.images.guest import errors


@pytest.mark.parametrize('kwargs, message', [
    ({'datastore': 'oracle'},
     "Unknown datastore 'oracle'; valid: mariadb, mysql"),
    ({'guest_os': 'centos'},
     "Unknown guest OS 'centos'; valid: debian, ubuntu"),
    ({'guest_release': 'xenial'}, "Unknown debian release 'xenial'"),
    ({'datastore_version': '5.5'}, "Unknown mysql version '5.5'"),
    ({'datastore': 'postgresql', 'datastore_version': '13'},
     "Unknown postgresql version '13'; valid: 15, 16, 17, 18"),
    ({'image_format': 'vmdk'}, "Unknown format 'vmdk'"),
    ({'output': '/tmp/guest.img'}, 'must end in .qcow2'),
    ({'ssh_key': '/nonexistent.pub'}, 'SSH public key file'),
    ({'base_image': 'local'}, '--base-image local needs --base-image-path'),
    ({'agent_source': 'local'}, '--guest-agent-source local needs'),
    ({'size': 0}, '--size must be a positive'),
])
def test_invalid_requests_fail_before_any_work(request_factory, kwargs,
                                               message):
    with pytest.raises(errors.BuildError) as e:
        builder.plan_build(request_factory(**kwargs))
    assert message in str(e.value)


def test_container_mode_elements_and_default_name(request_factory):
    plan = builder.plan_build(request_factory())
    assert plan.elements == ['debian-minimal', 'vm', 'trove-guest-agent',
                             'trove-guest-docker']
    assert plan.output.name == 'trove-guest-debian-bookworm-container.qcow2'


def test_debug_key_and_extra_elements(request_factory, tmp_path):
    key = tmp_path / 'id.pub'
    key.write_text('ssh-ed25519 AAAA test\n')
    plan = builder.plan_build(request_factory(
        datastore='postgresql', ssh_key=str(key),
        extra_elements=('my-element',)))
    assert plan.elements == ['debian-minimal', 'vm', 'trove-guest-agent',
                             'trove-guest-docker', 'trove-guest-ssh-key',
                             'my-element']
    assert plan.output.name == 'trove-guest-debian-bookworm-container.qcow2'


def _hash(request):
    plan = builder.plan_build(request)
    plan.mirror = request.mirror
    inputs = builder.hash_inputs(plan, 'pip:trove==26.0.0')
    return builder.hashing.build_hash(inputs)


def test_container_images_are_shared_between_datastores(request_factory):
    assert (_hash(request_factory(datastore='mysql'))
            == _hash(request_factory(datastore='postgresql'))
            == _hash(request_factory(datastore='mariadb',
                                     datastore_version='11.4')))


def test_hash_follows_options_and_mirror(request_factory):
    base = _hash(request_factory())
    moved = request_factory(output='/elsewhere/x.qcow2', force=True)
    assert _hash(moved) == base
    assert _hash(request_factory(size=5)) != base
    assert _hash(request_factory(mirror='http://other.example/debian')) != base


def test_hash_follows_element_content(request_factory, monkeypatch, tmp_path):
    elements = tmp_path / 'elements'
    shutil.copytree(builder.ELEMENTS_DIR, elements)
    monkeypatch.setattr(builder, 'ELEMENTS_DIR', elements)
    before = _hash(request_factory())
    script = (elements / 'trove-guest-base' / 'install.d'
              / '20-trove-guest-user')
    script.write_text(script.read_text() + '\n# changed\n')
    assert _hash(request_factory()) != before


def test_second_build_is_skipped(fake_dib, request_factory):
    first = builder.build_image(request_factory())
    assert not first.skipped
    assert len(fake_dib.calls) == 1
    sidecar = json.loads(pathlib.Path(first.sidecar_path).read_text())
    assert sidecar['build_hash'] == first.build_hash
    assert sidecar['sha256'] == first.sha256
    assert pathlib.Path(first.path + '.sha256').is_file()
    assert pathlib.Path(first.path + '.build-hash').read_text() == (
        first.build_hash + '\n')

    second = builder.build_image(request_factory())
    assert second.skipped
    assert len(fake_dib.calls) == 1
    assert (second.path, second.sha256, second.build_hash) == (
        first.path, first.sha256, first.build_hash)


def test_force_and_changed_inputs_rebuild(fake_dib, request_factory):
    builder.build_image(request_factory())
    assert not builder.build_image(request_factory(force=True)).skipped
    assert not builder.build_image(request_factory(size=3)).skipped
    assert len(fake_dib.calls) == 3


def test_touched_image_is_rebuilt(fake_dib, request_factory):
    first = builder.build_image(request_factory())
    pathlib.Path(first.path).write_bytes(b'tampered')
    assert not builder.build_image(request_factory()).skipped


def test_failed_build_leaves_nothing_behind(fake_dib, request_factory,
                                            monkeypatch):
    def broken(args, env, log_path, progress):
        raise errors.BuildError('disk-image-create failed')
    monkeypatch.setattr(builder.dib, 'run', broken)
    request = request_factory()
    with pytest.raises(errors.BuildError):
        builder.build_image(request)
    images = pathlib.Path(request.cache_dir) / 'images'
    assert list(images.iterdir()) == []


def test_dib_environment_and_arguments(fake_dib, request_factory):
    builder.build_image(request_factory(size=4, debug_trace=True))
    args, env = fake_dib.calls[0]
    assert args[:4] == ['-a', 'amd64', '-t', 'qcow2']
    assert '--checksum' in args
    assert args[args.index('--image-size') + 1] == '4'
    assert '-x' in args
    assert env['DIB_RELEASE'] == 'bookworm'
    assert env['DIB_DISTRIBUTION_MIRROR'] == 'http://mirror.example/debian'
    assert env['DIB_DEBIAN_SECURITY_MIRROR'] == 'http://mirror.example/debian-security'
    assert env['DIB_DEBIAN_USE_DEBOOTSTRAP_CACHE'] == '1'
    assert env['DIB_DEBOOTSTRAP_CACHE'] == '1'
    assert env['DIB_DEBUG_TRACE'] == '1'
    assert str(builder.ELEMENTS_DIR) in env['ELEMENTS_PATH']
    assert 'TROVE_GUEST_SSH_KEY' not in env


def test_dib_works_below_the_build_s_own_work_dir(fake_dib,
                                                 request_factory):
    """DIB's TMP_DIR (its dib_build.*, dib_image.* and all it mounts) is
    in the owned work dir beside the output, and its processes carry the
    marker that finds them."""
    request = request_factory()
    builder.build_image(request)
    _, env = fake_dib.calls[0]
    workdir = pathlib.Path(env[workdirs.MARKER_ENV])
    assert workdir.parent == pathlib.Path(request.cache_dir) / 'images'
    assert workdir.name.startswith(builder.WORKDIR_PREFIX)
    assert env['TMP_DIR'] == str(workdir / builder.WORKDIR_TMP)
    assert 'TMPDIR' not in env or env['TMPDIR'] == os.environ.get('TMPDIR')
    assert not workdir.exists()


def _dead_build_dir(directory):
    proc = subprocess.Popen(['true'])
    proc.wait()
    path = directory / f'{builder.WORKDIR_PREFIX}{proc.pid}-abcd'
    (path / 'tmp' / 'dib_build.x').mkdir(parents=True)
    (path / workdirs.OWNER_FILE).write_text(json.dumps(
        {'pid': proc.pid, 'started': time.time() - 5}))
    return path


def test_next_build_cleans_up_after_a_killed_one_even_when_skipped(
        fake_dib, request_factory):
    first = builder.build_image(request_factory())
    images = pathlib.Path(first.path).parent
    dead = _dead_build_dir(images)
    me = workdirs.Owner.current()
    live = images / f'{builder.WORKDIR_PREFIX}{me.pid}-live'
    live.mkdir()
    (live / workdirs.OWNER_FILE).write_text(json.dumps(
        {'pid': me.pid, 'started': me.started}))
    progress = []
    assert builder.build_image(request_factory(),
                               progress=progress.append).skipped
    assert not dead.exists()
    assert live.is_dir()
    assert any(str(dead) in line for line in progress)


def test_sweep_takes_stray_dib_dirs_only_as_root(tmp_path, monkeypatch):
    stray = pathlib.Path(builder.dib.STRAY_DIR) / 'dib_build.AAAA'
    stray.mkdir()
    monkeypatch.setattr(builder.os, 'geteuid', lambda: 1000)
    assert builder.sweep() == []
    monkeypatch.setattr(builder.os, 'geteuid', lambda: 0)
    (row,) = builder.sweep(dry_run=True)
    assert (row.path, row.action) == (str(stray), 'would-delete')
    (row,) = builder.sweep()
    assert row.action == 'deleted' and not stray.exists()


def test_download_base_image_skips_the_debootstrap_cache(fake_dib,
                                                        request_factory):
    builder.build_image(request_factory(base_image='download'))
    _, env = fake_dib.calls[0]
    assert 'DIB_DEBIAN_USE_DEBOOTSTRAP_CACHE' not in env


def test_shims_come_first_without_device_mapper(fake_dib, request_factory,
                                                monkeypatch):
    monkeypatch.setattr(builder.host, 'has_device_mapper', lambda: False)
    builder.build_image(request_factory())
    _, env = fake_dib.calls[0]
    assert env['PATH'].split(':')[0] == str(builder.SHIMS_DIR)
