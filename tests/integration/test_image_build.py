"""Real guest image builds: diskimage-builder, loop-mount inspection, the
README's quickstart loading a built image.

Needs root and the packages from tools/install-image-build-deps.  The
inspected image is the one the guest-booting tests share
(tests/integration/guest_images.py: MariaDB 11.8 and PostgreSQL 17
embedded, kept in the builder's cache and rebuilt when its inputs change);
verify-image and the compute cloud boot it to ACTIVE.  The debug-key test
always writes a fresh image, so every run does at least one real DIB
build.
"""

import contextlib
import json
import os
import pathlib
import subprocess

import pytest
from packaging.utils import canonicalize_name

from tests import helpers
from tests.integration import guest_images
from trovestack.images.guest import host

pytestmark = pytest.mark.image_build

GUEST_USER = 'trove'
AGENT_VENV = '/opt/guest-agent-venv'
# Trove API-side requirements that must not be in the guest (spec 000).
NOT_IN_GUEST = ('oslo-policy', 'python-troveclient',
                'python-openstackclient')


def _sh(*cmd, **kwargs):
    return subprocess.run([str(c) for c in cmd], check=True, text=True,
                          capture_output=True, **kwargs).stdout


@pytest.fixture(scope='module')
def build_host():
    try:
        host.check_root()
        host.check_tools(device_mapper=host.has_device_mapper(),
                         extra={'qemu-system-x86_64': 'qemu-system-x86',
                                'mkfs.vfat': 'dosfstools',
                                'mcopy': 'mtools'})
    except Exception as e:
        pytest.fail('%s (run tools/install-image-build-deps)' % e)


@pytest.fixture(scope='module')
def built(build_host):
    """(path, build result) of the shared embedded image."""
    return guest_images.build_embedded_mariadb_image()


def test_build_writes_image_checksum_and_build_hash(built):
    image, result = built
    assert result['Image'] == str(image)
    assert pathlib.Path(str(image) + '.sha256').read_text().split()[0] == (
        result['SHA256'])
    assert pathlib.Path(str(image) + '.build-hash').read_text().strip() == (
        result['Build hash'])
    sidecar = json.loads(pathlib.Path(str(image) + '.build.json').read_text())
    assert sidecar['build_hash'] == result['Build hash']
    info = json.loads(_sh('qemu-img', 'info', '--output=json', image))
    assert info['format'] == 'qcow2'


def test_unchanged_rebuild_is_skipped(built):
    image, first = built
    mtime = image.stat().st_mtime_ns
    logs = set(pathlib.Path(first['Log file']).parent.iterdir())
    second = helpers.run_json('trovestack', 'build-image',
                              *guest_images.build_args(), '--output', image)
    assert second['Skipped'] is True
    assert second['Build hash'] == first['Build hash']
    assert image.stat().st_mtime_ns == mtime
    assert set(pathlib.Path(first['Log file']).parent.iterdir()) == logs


@contextlib.contextmanager
def _mounted(image, workdir):
    raw = workdir / 'image.raw'
    _sh('qemu-img', 'convert', '-O', 'raw', image, raw)
    loop = _sh('losetup', '-P', '-r', '--show', '-f', raw).strip()
    mnt = workdir / 'mnt'
    mnt.mkdir()
    try:
        subprocess.run(['partx', '-a', loop], capture_output=True)
        _sh('mount', '-o', 'ro', loop + 'p1', mnt)
        try:
            yield mnt
        finally:
            _sh('umount', mnt)
    finally:
        subprocess.run(['partx', '-d', loop], capture_output=True)
        _sh('losetup', '-d', loop)
        raw.unlink()


@pytest.fixture(scope='module')
def root(built, tmp_path_factory):
    with _mounted(built[0], tmp_path_factory.mktemp('inspect')) as mnt:
        yield mnt


def _uid(root, user):
    for line in (root / 'etc' / 'passwd').read_text().splitlines():
        fields = line.split(':')
        if fields[0] == user:
            return int(fields[2]), fields[5]
    raise AssertionError('no user %s in the image' % user)


def test_guest_agent_installed_offline_in_its_venv(root):
    venv = root / AGENT_VENV.lstrip('/')
    assert (venv / 'bin' / 'trove-guestagent').is_file()
    site = next((venv / 'lib').glob('python3*/site-packages'))
    dists = {canonicalize_name(p.name.split('-')[0])
             for p in site.glob('*.dist-info')}
    assert 'trove' in dists and 'oslo-messaging' in dists
    assert not dists & set(NOT_IN_GUEST)
    assert (root / 'usr' / 'sbin' / 'dockerd').exists()


def test_services_enabled(root):
    wants = root / 'etc' / 'systemd' / 'system' / 'multi-user.target.wants'
    assert (wants / 'guest-agent.service').is_symlink()
    assert (wants / 'docker.service').is_symlink()
    unit = (root / 'etc' / 'systemd' / 'system'
            / 'guest-agent.service').read_text()
    assert 'User=%s' % GUEST_USER in unit
    assert '--config-dir=/etc/trove/conf.d' in unit
    # Started early (it imports beside cloud-init), released by its gate.
    assert 'DefaultDependencies=no' in unit
    assert 'Wants=guest-agent-gate.service' in unit
    assert (wants / 'guest-agent-gate.service').is_symlink()
    gate = (root / 'etc' / 'systemd' / 'system'
            / 'guest-agent-gate.service').read_text()
    assert 'cloud-init.service' in gate
    # Beside dockerd, not after it (its first call waits on the socket).
    assert 'docker.socket' in gate
    assert 'docker.service' not in gate + unit
    launcher = root / 'usr' / 'local' / 'lib' / 'trove-guest-agent'
    assert (launcher / 'early-start').is_file()


def test_user_sudoers_config_paths_and_datasources(root):
    uid, home = _uid(root, GUEST_USER)
    for path in ('etc/trove', 'etc/trove/conf.d', 'var/lib/trove',
                 'var/log/trove'):
        assert (root / path).stat().st_uid == uid, path
    sudoers = (root / 'etc' / 'sudoers.d' / '60-trove-guest').read_text()
    assert sudoers.strip() == '%s ALL=(ALL) NOPASSWD:ALL' % GUEST_USER
    datasources = (root / 'etc' / 'cloud' / 'cloud.cfg.d'
                   / '91-trove-datasources.cfg').read_text()
    assert 'ConfigDrive' in datasources and 'NoCloud' in datasources
    group = (root / 'etc' / 'group').read_text()
    assert any(line.startswith('docker:') and GUEST_USER in line
               for line in group.splitlines())


def test_no_ssh_key_unless_asked(root):
    _, home = _uid(root, GUEST_USER)
    assert not (root / home.lstrip('/') / '.ssh' / 'authorized_keys').exists()
    assert not (root / 'root' / '.ssh' / 'authorized_keys').exists()


def test_quickstart_loads_the_built_image_into_the_local_cloud(
        built, tmp_path_factory):
    """The README's main command, end to end on a cloud of its own, with
    the built image (``--image``): the real image goes to Glance and is
    registered and made the default; a second run changes nothing."""
    image, result = built
    work = tmp_path_factory.mktemp('quickstart')
    # provision names the Glance image after the file; its checksum and
    # build records are read beside it.
    given = work / 'trove-guest-quickstart.qcow2'
    for suffix in ('', *guest_images.RECORDS):
        pathlib.Path(f'{given}{suffix}').symlink_to(f'{image}{suffix}')
    quickstart = pathlib.Path(__file__).parents[2] / 'bin' / 'quickstart'
    state = work / 'cloud'
    command = [str(quickstart), guest_images.EMBEDDED, '--image', str(given),
               '--state-dir', str(state), '--base-port', '0', '-f', 'json']
    env = dict(os.environ, TROVESTACK_VENV=str(helpers.BIN.parent))
    try:
        first = json.loads(subprocess.run(
            command, check=True, capture_output=True, text=True,
            env=env).stdout)
        steps = {row['Step']: row for row in first}
        assert 'build-image' not in steps
        assert 'image uploaded' in steps['load-image']['Result']
        assert 'default' in steps['load-image']['Result']

        second = json.loads(subprocess.run(
            command, check=True, capture_output=True, text=True,
            env=env).stdout)
        again = {row['Step']: row for row in second}
        assert 'image reused' in again['load-image']['Result']
        assert 'version unchanged' in again['load-image']['Result']

        os_env = dict(env, OS_CLIENT_CONFIG_FILE=str(state / 'clouds.yaml'))
        shown = helpers.run_json(
            'openstack', '--os-cloud', 'trovestack-admin', 'image', 'show',
            'trove-guest-quickstart', env=os_env)
        assert shown['status'] == 'active'
        assert shown['checksum'] or shown['properties']
        stored = shown['properties']['owner_specified.openstack.sha256']
        assert stored == result['SHA256']
        assert shown['properties']['trove_build_hash'] == result['Build hash']
        assert 'trove' in shown['tags']
        assert (state / 'tempest.conf').exists()
    finally:
        helpers.run('trovestack', 'cloud', 'down', '--state-dir', state,
                    check=False)


def test_debug_ssh_key_on_a_container_image(build_host, tmp_path):
    """The optional debug SSH key for the guest user, on the one kind of
    image Trove 26 can use: guest agent + container runtime, no database
    installed from packages."""
    key = tmp_path / 'debug_key'
    _sh('ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-f', key)
    image = tmp_path / 'trove-guest-debug-key.qcow2'
    result = helpers.run_json(
        'trove-image-builder', '--datastore', 'postgresql',
        '--ssh-key', f'{key}.pub', '--output', image)
    assert result['Skipped'] is False
    with _mounted(image, tmp_path) as root:
        status = (root / 'var' / 'lib' / 'dpkg' / 'status').read_text()
        assert 'Package: postgresql-15\n' not in status
        assert 'Package: mariadb-server\n' not in status
        assert (root / 'usr' / 'sbin' / 'dockerd').exists()
        wants = root / 'etc' / 'systemd' / 'system' / (
            'multi-user.target.wants')
        assert (wants / 'guest-agent.service').is_symlink()
        _, home = _uid(root, GUEST_USER)
        authorized = root / home.lstrip('/') / '.ssh' / 'authorized_keys'
        assert authorized.read_text().strip() == (
            pathlib.Path(f'{key}.pub').read_text().strip())
