"""local.conf for the container, the tree under /opt/stack, and reading
where a stack.sh run stopped."""

import os
import pathlib
import subprocess
import sys

import yaml

from trovestack.devstack_env import ceph
from trovestack.devstack_env import stack
from trovestack.devstack_env import staging
from trovestack.orchestration import kickstart

SAMPLE = kickstart.SAMPLES_DIR / 'mariadb.conf'


def _conf(sample=SAMPLE):
    return stack.local_conf(sample, address='10.208.0.2',
                            machine='trovestack-unit',
                            plugin_repo='/opt/stack/trovestack',
                            plugin_ref='real-devstack')


def _localrc(text):
    _, sections = kickstart.parse_sections(text)
    return dict(sections)[kickstart.LOCALRC_SECTION]


def test_local_conf_keeps_the_sample_and_adds_offline_settings():
    lines = _localrc(_conf())
    assert 'TROVE_DATASTORES=mariadb:11.8' in lines
    assert ('enable_plugin trovestack /opt/stack/trovestack '
            'real-devstack') in lines
    for setting in ('ERROR_ON_CLONE=True', 'RECLONE=False', 'OFFLINE=False',
                    'LIBVIRT_TYPE=qemu', 'OVS_DATAPATH_TYPE=netdev',
                    'HOST_IP=10.208.0.2', 'disable_service etcd3',
                    'disable_service c-bak', 'TEMPEST_BRANCH=master',
                    'TEMPEST_PLUGINS=/opt/stack/trove-tempest-plugin',
                    'CINDER_ENABLED_BACKENDS=ceph:ceph',
                    f'PIP_FIND_LINKS={staging.WHEEL_MOUNT}',
                    f'TROVE_GUEST_IMAGE={stack.GUEST_IMAGE}',
                    f'IMAGE_URLS=file://{stack.GUEST_IMAGE}'):
        assert setting in lines
    # Ours come after the sample's, so they win.
    assert lines.index('ERROR_ON_CLONE=True') > lines.index(
        'TROVE_DATASTORES=mariadb:11.8')


def test_a_guest_image_built_on_the_host_replaces_the_placeholder(tmp_path):
    image = tmp_path / 'trove-guest-x-mariadb-11.8.qcow2'
    image.write_bytes(b'QFI')
    for suffix in ('.sha256', '.build.json'):
        image.with_name(image.name + suffix).write_text('{}')
    files = stack.guest_image_files(image)
    assert [f.name for f in files] == [
        image.name, image.name + '.sha256', image.name + '.build.json']
    inside = stack.guest_image_path(image)
    assert inside == f'{stack.GUEST_DIR}/{image.name}'
    lines = _localrc(stack.local_conf(
        SAMPLE, address='10.208.0.2', machine='trovestack-unit',
        plugin_repo='/opt/stack/trovestack', plugin_ref=None,
        guest_image=inside))
    assert f'TROVE_GUEST_IMAGE={inside}' in lines
    assert 'TROVE_DATASTORE_IMAGE_SOURCE=embedded' in lines
    assert f'TROVE_GUEST_IMAGE={stack.GUEST_IMAGE}' not in lines


def test_volumes_go_to_the_containers_ceph_cluster():
    lines = _localrc(_conf())
    uuid = ceph.secret_uuid('trovestack-unit')
    assert f'CINDER_CEPH_UUID={uuid}' in lines
    assert f'CEPH_CONF_FILE={ceph.CONF}' in lines
    assert not any(line.startswith('TROVE_VOLUME_SUPPORT') for line in lines)
    # The same container name, the same ids; another name, others.
    assert ceph.fsid('trovestack-unit') == ceph.fsid('trovestack-unit')
    assert ceph.fsid('trovestack-unit') != ceph.fsid('trovestack-other')
    conf = ceph.config_text('trovestack-unit')
    assert 'mon_host = v1:127.0.0.1:6789' in conf
    assert 'auth_client_required = cephx' in conf


def test_local_sh_defines_the_libvirt_secret_without_showing_the_key(
        tmp_path):
    script = ceph.local_sh('trovestack-unit')
    assert script.startswith('#!/bin/bash\n')
    assert ceph.secret_uuid('trovestack-unit') in script
    # The key goes through a file, never a command line or the trace.
    assert '--file "$key"' in script and '--base64' not in script
    assert 'set +o xtrace' in script
    path = tmp_path / 'local.sh'
    path.write_text(script)
    assert subprocess.run(['bash', '-n', str(path)]).returncode == 0


def test_local_conf_of_a_sample_without_headers(tmp_path):
    sample = tmp_path / 'bare.conf'
    sample.write_text('ADMIN_PASSWORD=secret\nTROVE_DATASTORES=mysql:8.4\n')
    lines = _localrc(_conf(sample))
    assert 'TROVE_DATASTORES=mysql:8.4' in lines
    assert 'LIBVIRT_TYPE=qemu' in lines
    assert any(line.startswith('enable_plugin trovestack') for line in lines)


def test_local_conf_keeps_other_sections(tmp_path):
    sample = tmp_path / 'full.conf'
    sample.write_text('[[local|localrc]]\nA=1\n'
                      '[[post-config|$NOVA_CONF]]\n[DEFAULT]\ndebug=True\n')
    _, sections = kickstart.parse_sections(_conf(sample))
    assert ('post-config', '$NOVA_CONF') in dict(sections)


def test_enabled_services_leave_out_what_cannot_run_here():
    services = stack.enabled_services()
    for gone in ('c-bak', 'etcd3', 'n-novnc', 'horizon'):
        assert gone not in services
    for kept in ('key', 'n-cpu', 'q-svc', 'mysql', 'rabbit', 'tr-api',
                 'c-api', 'c-vol', 'tempest'):
        assert kept in services


T = '2026-12-07 06:40:0{}.000 | '
LOG_FAILED = '\n'.join([
    T.format(0) + "+ ./stack.sh:main:780   echo_summary "
    "'Installing package prerequisites'",
    T.format(1) + '+ functions-common:apt_get:1200 sudo apt-get install foo',
    T.format(2) + "+ lib/nova:install_nova:960 echo_summary 'Installing Nova'",
    T.format(3) + '+ inc/python:pip_install:210 /opt/stack/data/venv/bin/pip '
    'install -c /opt/stack/requirements/upper-constraints.txt '
    '-e /opt/stack/nova',
    T.format(4) + 'ERROR: No matching distribution found for oslo.foo',
    T.format(5) + '+ inc/python:pip_install:1 exit_trap',
    T.format(6) + '+ ./stack.sh:exit_trap:530 local r=1',
    T.format(7) + 'Error on exit',
]) + '\n'

LOG_DIED = '''\
+ ./stack.sh:main:100 echo_summary "Starting Trove"
+ lib/trove:start_trove:10 die 10 'trove-api did not start'
[ERROR] /opt/stack/trovestack/devstack/lib/trove:10 trove-api did not start
+ ./stack.sh:exit_trap:530 local r=1
'''


def test_analyse_names_the_phase_and_the_failing_command():
    phase, failing, tail = stack.analyse(LOG_FAILED)
    assert phase == 'Installing Nova'
    assert failing.startswith('inc/python:pip_install:210 '
                              '/opt/stack/data/venv/bin/pip install')
    assert 'Error on exit' in tail


def test_analyse_prefers_a_die_message():
    phase, failing, _ = stack.analyse(LOG_DIED)
    assert phase == 'Starting Trove'
    assert failing == ('/opt/stack/trovestack/devstack/lib/trove:10 '
                       'trove-api did not start')


def test_analyse_of_an_empty_log():
    assert stack.analyse('') == ('', '', '')


def test_result_round_trip(tmp_path):
    from trovestack.devstack_env import layout

    paths = layout.EnvPaths.of('t1', tmp_path)
    paths.root.mkdir(parents=True)
    assert stack.load_result(paths) is None
    result = stack.StackResult(1, 12.5, 'Installing Nova', 'pip install',
                               'tail', '/x/stack.sh.out')
    stack.save_result(paths, result)
    assert stack.load_result(paths) == result
    assert not result.ok


def _staged(tmp_path):
    sources = tmp_path / 'sources'
    (sources / 'nova').mkdir(parents=True, exist_ok=True)
    (sources / 'nova' / 'PKG-INFO').write_text('Version: 34.0.0\n')
    requirements = tmp_path / 'req'
    (requirements / 'requirements').mkdir(parents=True, exist_ok=True)
    (requirements / 'requirements' / 'upper-constraints.txt').write_text('')

    def art(kind, path):
        return staging.Artifact(kind, kind * 3, path, False, 0.0)

    return staging.Staged(rootfs=art('rootfs', tmp_path / 'r'),
                          repo=art('apt', tmp_path / 'a'),
                          wheels=art('wheels', tmp_path / 'w'),
                          sources=art('sources', sources),
                          requirements=art('requirements', requirements))


def test_place_tree_copies_everything_as_the_stack_user(tmp_path,
                                                        monkeypatch):
    rootfs = tmp_path / 'rootfs'
    (rootfs / 'etc').mkdir(parents=True)
    (rootfs / 'opt' / 'stack').mkdir(parents=True)
    (rootfs / 'etc' / 'passwd').write_text(
        'root:x:0:0::/root:/bin/bash\n'
        f'stack:x:{os_uid()}:{os_gid()}::/opt/stack:/bin/bash\n')
    devstack = tmp_path / 'devstack'
    devstack.mkdir()
    (devstack / 'stack.sh').write_text('#!/bin/bash\n')
    (devstack / 'stack.sh').chmod(0o444)
    checkout = tmp_path / 'checkout'
    checkout.mkdir()
    subprocess.run(['git', 'init', '-q', str(checkout)], check=True)
    subprocess.run(['git', '-C', str(checkout), '-c', 'user.name=t', '-c',
                    'user.email=t@t', 'commit', '-q', '--allow-empty', '-m',
                    'x'], check=True)
    monkeypatch.setattr(stack, '_placeholder_image',
                        lambda path: path.write_bytes(b'QFI'))
    placed = stack.place_tree(rootfs, staged=_staged(tmp_path),
                              devstack_dir=devstack, checkout=checkout,
                              local_conf_text='[[local|localrc]]\n',
                              machine='trovestack-unit')
    dest = rootfs / 'opt' / 'stack'
    hook = dest / 'devstack' / 'local.sh'
    assert hook.read_text() == ceph.local_sh('trovestack-unit')
    assert os.access(hook, os.X_OK)
    assert placed == ['nova', 'requirements', 'devstack', 'os-test-images',
                      kickstart.plugin_name()]
    stand_in = dest / 'os-test-images'
    assert (stand_in / 'tox.ini').is_file() and (stand_in / '.git').is_dir()
    # lib/tempest's "tox -egenerate" runs generate.py: images and manifest.
    out = tmp_path / 'generated'
    subprocess.run([sys.executable, str(stand_in / 'generate.py'), str(out)],
                   check=True)
    manifest = yaml.safe_load((out / 'manifest.yaml').read_text())
    for image in manifest['images']:
        assert (out / image['filename']).is_file()
        assert image['usable'] is True
    assert (dest / 'nova' / 'PKG-INFO').is_file()
    assert (dest / 'devstack' / 'local.conf').read_text().startswith('[[')
    assert (dest / kickstart.plugin_name() / '.git').is_dir()
    assert (dest / 'devstack' / '.git').is_dir()
    units = rootfs / 'etc/systemd/system'
    assert 'ConditionPathExists=' in (
        units / 'iscsid.service.d/trovestack.conf').read_text()
    assert 'ovn-bridge-datapath-type=netdev' in (
        units / 'ovn-controller.service.d/trovestack.conf').read_text()
    assert 'ConditionPathExists=/dev/nvme-fabrics' in (
        units / 'nvmf-autoconnect.service.d/trovestack.conf').read_text()
    assert 'ConditionPathIsReadWrite=/sys/kernel/mm/ksm' in (
        units / 'ksm.service.d/trovestack.conf').read_text()
    assert 'cgroup_controllers = [ ]' in (
        units / 'libvirtd.service.d/trovestack.conf').read_text()
    assert 'userspace-tso-enable=true' in (
        units / 'ovs-vswitchd.service.d/trovestack.conf').read_text()
    assert (rootfs / stack.GUEST_IMAGE.lstrip('/')).is_file()
    # Placing again changes nothing that is there.
    stack.place_tree(rootfs, staged=_staged(tmp_path), devstack_dir=devstack,
                     checkout=checkout, local_conf_text='[[local|localrc]]\n',
                     machine='trovestack-unit')


def test_place_tree_copies_a_guest_image_built_on_the_host(
        tmp_path, monkeypatch):
    rootfs = tmp_path / 'rootfs'
    (rootfs / 'etc').mkdir(parents=True)
    (rootfs / 'etc' / 'passwd').write_text(
        f'stack:x:{os_uid()}:{os_gid()}::/opt/stack:/bin/bash\n')
    devstack = tmp_path / 'devstack'
    (devstack / '.git').mkdir(parents=True)
    checkout = tmp_path / 'checkout'
    (checkout / '.git').mkdir(parents=True)
    (rootfs / 'opt/stack' / kickstart.plugin_name()).mkdir(parents=True)
    image = tmp_path / 'guest.qcow2'
    image.write_bytes(b'QFI')
    monkeypatch.setattr(stack, '_placeholder_image',
                        lambda path: path.write_bytes(b'placeholder'))
    stack.place_tree(rootfs, staged=_staged(tmp_path), devstack_dir=devstack,
                     checkout=checkout, local_conf_text='',
                     machine='trovestack-unit',
                     guest_files=stack.guest_image_files(image))
    inside = rootfs / stack.guest_image_path(image).lstrip('/')
    assert inside.read_bytes() == b'QFI'
    # The placeholder stays: devstack uploads it as tempest's image.
    assert (rootfs / stack.GUEST_IMAGE.lstrip('/')).is_file()


def os_uid():
    return os.getuid()


def os_gid():
    return os.getgid()


def test_guest_image_is_under_dest():
    assert pathlib.PurePosixPath(stack.GUEST_IMAGE).parent == \
        pathlib.PurePosixPath(stack.DEST)


def test_secrets_of_local_conf_and_redaction():
    text = _conf()
    assert stack.secrets_of(text) == ['secret']
    assert stack.secrets_of('X_PASSWORD=$ADMIN_PASSWORD\nA=b\n') == []
    line = 'sudo rabbitmqctl change_password stackrabbit secret'
    assert stack.redact(line, ['secret']) == (
        'sudo rabbitmqctl change_password stackrabbit ***')


LOG_SYSCTL = '\n'.join([
    "+ stack.sh:main:897 : echo_summary 'Installing OpenStack project source'",
    '+ lib/nova:configure_nova:273 : is_service_enabled n-cpu',
    '+ lib/nova:configure_nova:275 : sudo sysctl -w net.ipv4.ip_forward=1',
    'sysctl: permission denied on key "net.ipv4.ip_forward"',
    '+ lib/nova:configure_nova:1 : exit_trap',
    '+ stack.sh:exit_trap:525 : local r=1',
    'ovs-ofctl: br-int is not a bridge or a socket',
    '+ stack.sh:exit_trap:560 : exit 1',
])


def test_analyse_names_the_command_before_the_exit_trap_and_its_output():
    phase, failing, tail = stack.analyse(LOG_SYSCTL)
    assert phase == 'Installing OpenStack project source'
    assert failing == ('lib/nova:configure_nova:275 : sudo sysctl -w '
                       'net.ipv4.ip_forward=1 -> sysctl: permission denied '
                       'on key "net.ipv4.ip_forward"')
    assert tail.endswith('exit 1')
