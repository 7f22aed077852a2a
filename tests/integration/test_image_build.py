"""Real guest image build: diskimage-builder, loop-mount inspection, qemu boot.

Needs root and the packages from tools/install-image-build-deps. The build
reuses the wheelhouse and debootstrap caches in ~/.cache/trove-image-builder
(or $TROVE_IMAGE_BUILDER_CACHE) but always writes a fresh image, so every
run does one real DIB build.
"""

import contextlib
import json
import os
import pathlib
import re
import shutil
import subprocess
import time

import pytest
from packaging.utils import canonicalize_name

from tests import helpers
from trovestack.imagebuild import host

pytestmark = pytest.mark.image_build

GUEST_USER = 'trove'
AGENT_VENV = '/opt/guest-agent-venv'
BOOT_TIMEOUT = 900
MARKER = 'TROVESTACK-GUEST-CHECK'
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
def built(build_host, tmp_path_factory):
    out_dir = tmp_path_factory.mktemp('image')
    image = out_dir / 'trove-guest-mysql.qcow2'
    result = helpers.run_json('trove-image-builder', '--datastore', 'mysql',
                              '--output', image)
    return image, result


def test_build_writes_image_checksum_and_build_hash(built):
    image, result = built
    assert result['Skipped'] is False
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
                              '--datastore', 'mariadb', '--output', image)
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
    assert 'docker.service' in unit


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


USER_DATA = """#cloud-config
write_files:
  - path: /etc/trove/conf.d/guest_info.conf
    content: |
      [DEFAULT]
      guest_id = 6b3c8a4e-0000-4000-8000-000000000001
      datastore_manager = mysql
      datastore_version = 8.0
  - path: /etc/trove/conf.d/trove-guestagent.conf
    content: |
      [DEFAULT]
      transport_url = rabbit://guest:guest@10.0.2.2:5672/
      control_exchange = trove
runcmd:
  - |
    for i in $(seq 72); do
      journalctl -u guest-agent | grep -q 'impl_rabbit.*Connection failed' \\
        && break
      [ "$(systemctl show -p NRestarts --value guest-agent)" = 0 ] || break
      sleep 5
    done
    m=%(marker)s
    {
      echo "$m active=$(systemctl is-active guest-agent)"
      echo "$m restarts=$(systemctl show -p NRestarts --value guest-agent)"
      journalctl -u guest-agent --no-pager | grep -v pam_unix | tail -n 150 \\
        | sed "s/^/$m journal /"
      echo "$m end"
    } > /dev/ttyS0
    systemctl poweroff
""" % {'marker': MARKER}


def _nocloud_seed(workdir):
    (workdir / 'user-data').write_text(USER_DATA)
    (workdir / 'meta-data').write_text(
        'instance-id: trovestack-test\nlocal-hostname: trove-guest\n')
    seed = workdir / 'seed.img'
    _sh('mkfs.vfat', '-n', 'CIDATA', '-C', seed, '2048')
    _sh('mcopy', '-i', seed, workdir / 'user-data', workdir / 'meta-data',
        '::')
    return seed


def _boot(image, workdir):
    seed = _nocloud_seed(workdir)
    volume = workdir / 'volume.qcow2'
    _sh('qemu-img', 'create', '-f', 'qcow2', volume, '2G')
    console = workdir / 'console.log'
    cmd = ['qemu-system-x86_64', '-accel', 'tcg', '-m', '2048', '-smp', '2',
           '-display', 'none', '-monitor', 'none', '-no-reboot',
           '-serial', 'file:%s' % console,
           '-drive', 'file=%s,if=virtio,format=qcow2,snapshot=on' % image,
           '-drive', 'file=%s,if=virtio,format=qcow2' % volume,
           '-drive', 'file=%s,if=virtio,format=raw,readonly=on' % seed,
           '-netdev', 'user,id=net0', '-device', 'virtio-net-pci,netdev=net0']
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + BOOT_TIMEOUT
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if console.exists() and '%s end' % MARKER in console.read_text(
                    errors='replace'):
                break
            time.sleep(5)
    finally:
        if proc.poll() is None:
            proc.terminate()
        proc.wait(timeout=30)
    text = console.read_text(errors='replace') if console.exists() else ''
    keep = os.environ.get('TROVESTACK_CONSOLE_LOG')
    if keep and console.exists():
        shutil.copy(console, keep)
    return text, proc.stderr.read()


def test_boots_and_guest_agent_starts(built, tmp_path_factory):
    console, qemu_err = _boot(built[0], tmp_path_factory.mktemp('boot'))
    lines = [line.split(MARKER, 1)[1].strip() for line in console.splitlines()
             if MARKER in line and 'echo' not in line]
    assert lines, 'no guest check on the serial console; qemu: %s\n%s' % (
        qemu_err, console[-3000:])
    journal = '\n'.join(lines)
    assert 'active=active' in lines, journal
    assert 'restarts=0' in lines, journal
    assert 'Traceback' not in journal, journal
    # Past config, database user and data volume: now retrying RabbitMQ.
    assert 'Creating user and group for database service' in journal, journal
    assert re.search(r'impl_rabbit .*Connection failed: .*ECONNREFUSED',
                     journal), journal


def test_quickstart_loads_the_built_image_into_the_local_cloud(
        built, tmp_path_factory):
    """The README's main command, end to end on a cloud of its own: the
    build step finds the image up to date, the real image goes to Glance
    and is registered; a second run changes nothing."""
    image, result = built
    work = tmp_path_factory.mktemp('quickstart')
    image_dir = work / 'images'
    image_dir.mkdir()
    # Where provision's build step writes a container-mode image.
    target = image_dir / 'trove-guest-debian-bookworm-container.qcow2'
    for suffix in ('', '.sha256', '.md5', '.build-hash', '.build.json'):
        shutil.copy2(f'{image}{suffix}', f'{target}{suffix}')
    quickstart = pathlib.Path(__file__).parents[2] / 'bin' / 'quickstart'
    state = work / 'cloud'
    command = [str(quickstart), 'mysql', '--image-dir', str(image_dir),
               '--state-dir', str(state), '--base-port', '0', '-f', 'json']
    env = dict(os.environ, TROVESTACK_VENV=str(helpers.BIN.parent))
    try:
        first = json.loads(subprocess.run(
            command, check=True, capture_output=True, text=True,
            env=env).stdout)
        steps = {row['Step']: row for row in first}
        assert steps['build-image']['Result'] == 'unchanged, not rebuilt'
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
            'trove-guest-debian-bookworm-container', env=os_env)
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
