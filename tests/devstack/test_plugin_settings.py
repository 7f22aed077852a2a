"""The plugin's settings checks, sample local.conf files and bash hygiene.

These run the real plugin.sh on the fake devstack library (no cloud is
needed: pre-install only validates settings).
"""

import inspect
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys

import pytest

from tests.devstack import harness
from trovestack.trove import instance_prereqs

SAMPLES = sorted((harness.REPO / 'samples' / 'localrc').glob('*.conf'))
BASH_FILES = [
    harness.REPO / 'devstack' / 'plugin.sh',
    harness.REPO / 'devstack' / 'settings',
    harness.REPO / 'devstack' / 'lib' / 'trove',
    harness.REPO / 'tests' / 'devstack' / 'run-plugin',
    harness.REPO / 'tests' / 'devstack' / 'fake-devstack' / 'functions',
]


def run_plugin(tmp_path, *args, local_conf=None, **settings):
    env = {key: value for key, value in os.environ.items()
           if not key.startswith('TROVE_')}
    env.update(FAKE_DEVSTACK_STATE=str(tmp_path / 'devstack'),
               DEST=str(tmp_path / 'opt'), **settings)
    command = ['bash', str(harness.RUN_PLUGIN)]
    if local_conf:
        command += ['--local-conf', str(local_conf)]
    return subprocess.run(command + list(args), env=env, text=True,
                          capture_output=True, stdin=subprocess.DEVNULL,
                          check=False, timeout=60)


def calls(tmp_path):
    return (tmp_path / 'devstack' / 'calls.log').read_text().splitlines()


def error_lines(result):
    return [line for line in result.stderr.splitlines()
            if line.startswith('[ERROR]')]


@pytest.mark.parametrize('sample', SAMPLES, ids=lambda path: path.name)
def test_sample_local_conf_passes_settings_checks(tmp_path, sample):
    result = run_plugin(tmp_path, 'stack', 'pre-install', local_conf=sample)
    assert result.returncode == 0, result.stderr
    assert 'Checking Trove settings' in result.stdout
    assert any(call.startswith('enable_plugin trovestack ')
               for call in calls(tmp_path))


def test_samples_cover_each_datastore_several_and_prebuilt():
    names = {path.stem for path in SAMPLES}
    assert {'mysql', 'mariadb', 'postgresql', 'multi-datastore',
            'prebuilt-image'} <= names
    multi = (harness.REPO / 'samples' / 'localrc'
             / 'multi-datastore.conf').read_text()
    assert re.search(r'^TROVE_DATASTORES=\S+,\S+', multi, re.M)
    prebuilt = (harness.REPO / 'samples' / 'localrc'
                / 'prebuilt-image.conf').read_text()
    assert re.search(r'^TROVE_GUEST_IMAGE=\S+', prebuilt, re.M)


def test_defaults_pass_settings_checks(tmp_path):
    result = run_plugin(tmp_path, 'stack', 'pre-install')
    assert result.returncode == 0, result.stderr
    assert 'define_plugin trovestack' in calls(tmp_path)


@pytest.mark.parametrize('value, fragments', [
    ('mysql:8.4,postgres:17',
     ["Unknown datastore 'postgres'", 'valid: mysql, mariadb, postgresql']),
    ('mysql:9.9', ['Cannot build mysql 9.9', 'valid versions of mysql:']),
    ('postgresql:13', ['Cannot build postgresql 13',
                       'valid versions of postgresql: 15, 16, 17, 18']),
    ('mysql', ["'mysql' is not datastore:version"]),
    (',', ['TROVE_DATASTORES is empty']),
])
def test_bad_datastores_fail_early(tmp_path, value, fragments):
    result = run_plugin(tmp_path, 'stack', 'pre-install',
                        TROVE_DATASTORES=value)
    assert result.returncode != 0
    [line] = error_lines(result)
    for fragment in fragments:
        assert fragment in line


def test_prebuilt_image_allows_any_version(tmp_path):
    result = run_plugin(tmp_path, 'stack', 'pre-install',
                        TROVE_DATASTORES='mysql:9.1',
                        TROVE_GUEST_IMAGE='/images/mysql-9.1.qcow2')
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize('settings, fragment', [
    ({'TROVE_GUEST_IMAGE': 'https://example.org/guest.qcow2'},
     'TROVE_GUEST_IMAGE_SHA256'),
    ({'TROVE_DATASTORE_IMAGE_SOURCE': 'hub'},
     "TROVE_DATASTORE_IMAGE_SOURCE='hub' is not one of: upstream embedded"),
    ({'TROVE_DATASTORE_IMAGE_SOURCE': 'embedded',
      'TROVE_DATASTORES': 'mysql:8.4'},
     'No offline datastore image for mysql:8.4'),
    ({'TROVE_DATASTORE_IMAGE_SOURCE': 'registry',
      'TROVE_DATASTORES': 'postgresql:17',
      'TROVE_DATASTORE_REGISTRY': 'no-port'},
     "TROVE_DATASTORE_REGISTRY='no-port' is not host:port"),
    ({'TROVE_BACKUP_IMAGE_SOURCE': 'embedded'},
     "TROVE_BACKUP_IMAGE_SOURCE='embedded' is not one of: upstream registry"),
    # backup images alone need the registry too
    ({'TROVE_BACKUP_IMAGE_SOURCE': 'registry',
      'TROVE_DATASTORE_REGISTRY': 'no-port'},
     "TROVE_DATASTORE_REGISTRY='no-port' is not host:port"),
    ({'TROVE_BACKUP_IMAGE_SOURCE': 'registry',
      'TROVE_DATASTORE_REGISTRY_PUSH': 'localhost'},
     "TROVE_DATASTORE_REGISTRY_PUSH='localhost' is not host:port"),
    ({'TROVE_MGMT_SUBNET_RANGE': '192.168.254.0'},
     'TROVE_MGMT_SUBNET_RANGE'),
    ({'TROVE_USAGE_TIMEOUT': '10m'},
     "TROVE_USAGE_TIMEOUT='10m' is not a number of seconds"),
    ({'TROVE_GUEST_OS': 'centos'}, "TROVE_GUEST_OS='centos' is not one of"),
    ({'TROVE_TEST_FLAVOR_SET': 'm1'}, 'TROVE_TEST_FLAVOR_SET'),
    ({'TROVE_RESIZE_TIME_OUT': '-1'},
     "TROVE_RESIZE_TIME_OUT='-1' is not a number of seconds"),
    ({'TROVE_MAX_ACCEPTED_VOLUME_SIZE': '10G'},
     "TROVE_MAX_ACCEPTED_VOLUME_SIZE='10G' is not a positive number"),
    ({'TROVE_GUEST_IMAGE_USER': 'Ubuntu'},
     "TROVE_GUEST_IMAGE_USER='Ubuntu' is not a user name"),
    ({'ENABLED_SERVICES': 'key,g-api,n-api'},
     "Trove needs Cinder's API (enable_service c-api)"),
])
def test_bad_settings_fail_early(tmp_path, settings, fragment):
    result = run_plugin(tmp_path, 'stack', 'pre-install', **settings)
    assert result.returncode != 0
    [line] = error_lines(result)
    assert fragment in line


def test_volume_support_without_cinder_volume_warns(tmp_path):
    result = run_plugin(tmp_path, 'stack', 'pre-install',
                        ENABLED_SERVICES='key,g-api,n-api,c-api')
    assert result.returncode == 0, result.stderr
    assert 'TROVE_VOLUME_SUPPORT=True and no c-vol' in result.stderr
    result = run_plugin(tmp_path, 'stack', 'pre-install',
                        ENABLED_SERVICES='key,g-api,n-api,c-api',
                        TROVE_VOLUME_SUPPORT='False')
    assert result.returncode == 0, result.stderr
    assert 'WARNING' not in result.stderr


def test_disabled_plugin_does_nothing(tmp_path):
    result = run_plugin(tmp_path, 'stack', 'pre-install',
                        TROVE_DATASTORES='typo:1',
                        DISABLED_SERVICES='trove,tr-api,tr-tmgr,tr-cond')
    assert result.returncode == 0, result.stderr
    assert 'Checking Trove settings' not in result.stdout


def test_settings_have_no_side_effects(tmp_path):
    """Sourcing settings creates nothing and calls no command."""
    script = (f'source {harness.REPO}/tests/devstack/fake-devstack/functions'
              f' && source {harness.REPO}/devstack/settings'
              ' && echo "$TROVE_DATASTORES|$TROVE_IMAGE_DIR'
              '|$ENABLED_SERVICES"')
    env = {'PATH': os.environ['PATH'], 'DEST': '/opt/stack',
           'DATA_DIR': '/opt/stack/data', 'ENABLED_SERVICES': 'key',
           'FAKE_DEVSTACK_STATE': str(tmp_path / 'state')}
    result = subprocess.run(['bash', '-c', script], cwd=tmp_path, env=env,
                            capture_output=True, text=True, check=True)
    assert result.stdout.strip() == (
        'mysql:8.4|/opt/stack/data/trovestack/images|'
        'key,trove,tr-api,tr-tmgr,tr-cond')
    # only define_plugin was recorded; nothing else was made
    assert (os.listdir(tmp_path) == ['state']
            and os.listdir(tmp_path / 'state') == ['calls.log'])


def test_buildable_list_matches_image_builder():
    listing = json.loads(subprocess.run(
        [str(harness.BIN / 'trove-image-builder'), '--list', '-f', 'json'],
        capture_output=True, text=True, check=True).stdout)
    builder = set()
    for key, text in listing.items():
        kind, name = key.split()
        if kind == 'datastore':
            versions = re.search(r'versions: ([^(;]+)', text).group(1)
            builder |= {f'{name}:{v.strip()}' for v in versions.split(',')}
    lib = (harness.REPO / 'devstack' / 'lib' / 'trove').read_text()
    ours = set(' '.join(re.findall(r'_TROVE_BUILDABLE\+?="([^"]*)"',
                                   lib)).split())
    assert ours == builder


@pytest.mark.skipif(shutil.which('shellcheck') is None,
                    reason='shellcheck is not installed '
                           '(apt-get install shellcheck)')
def test_shellcheck_clean():
    result = subprocess.run(['shellcheck', '-x', '-s', 'bash',
                             *map(str, BASH_FILES)], cwd=harness.REPO,
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout


def test_bashate_clean():
    result = subprocess.run(
        [str(pathlib.Path(sys.executable).parent / 'bashate'),
         '--error', 'E042', *map(str, BASH_FILES)],
        capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout
    assert 'warning' not in result.stdout, result.stdout


@pytest.mark.skipif(not os.environ.get('TROVESTACK_DEVSTACK_DIR'),
                    reason='set TROVESTACK_DEVSTACK_DIR to a devstack '
                           'checkout to source the settings on it')
def test_settings_source_on_real_devstack(tmp_path):
    """devstack's own functions and stackrc, then our settings and the
    pre-install checks, nounset."""
    top = os.environ['TROVESTACK_DEVSTACK_DIR']
    script = f'''set -o errexit
        TOP_DIR={top}
        source "$TOP_DIR/functions"
        source "$TOP_DIR/stackrc" >/dev/null
        DISABLED_SERVICES=${{DISABLED_SERVICES:-}}
        set -o nounset
        source {harness.REPO}/devstack/settings
        source {harness.REPO}/devstack/lib/trove
        check_trove_settings  # pre-install, on devstack's own helpers
        echo "$TROVE_DATASTORE_IMAGE_SOURCE|$TROVE_MGMT_SUBNET_NAME"
        echo "$ENABLED_SERVICES"'''
    result = subprocess.run(['bash', '-c', script], cwd=tmp_path,
                            env={'PATH': os.environ['PATH'],
                                 'HOME': str(tmp_path)},
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    first, services = result.stdout.splitlines()[-2:]
    assert first == 'upstream|trove-mgmt-subnet'
    assert services.endswith(',trove,tr-api,tr-tmgr,tr-cond')


def test_offline_list_matches_datastore_images():
    from trovestack.images.datastore import datastores as offline

    lib = (harness.REPO / 'devstack' / 'lib' / 'trove').read_text()
    ours = set(' '.join(re.findall(r'_TROVE_OFFLINE_IMAGES\+?="([^"]*)"',
                                   lib)).split())
    assert ours == set(offline.supported())


def _stand_in(bin_dir, name, log, status=0):
    """An executable that appends its name and arguments to ``log``."""
    tool = bin_dir / name
    tool.write_text(f'#!/bin/sh\necho "{name} $*" >> {log}\nexit {status}\n')
    tool.chmod(0o755)


@pytest.mark.parametrize('link, settings, wanted', [
    # (the stand-in ip says the link is still there after del-port, as a
    # userspace-datapath port is with Open vSwitch stopped)
    (0, {}, ['ip link show trove-mgmt',
             'ovs-vsctl --timeout=10 --if-exists del-port br-int '
             'trove-mgmt', 'ip link show trove-mgmt',
             'ip link delete trove-mgmt']),
    (1, {}, ['ip link show trove-mgmt']),  # never plugged: nothing to do
    (0, {'TROVE_MGMT_HOST_PORT': ''}, []),  # no host port wanted
])
def test_clean_unplugs_this_hosts_management_interface(tmp_path, link,
                                                       settings, wanted):
    # lib/trove names the interface plug_host_port makes
    assert inspect.signature(instance_prereqs.plug_host_port).parameters[
        'interface'].default == 'trove-mgmt'
    bin_dir, log = tmp_path / 'bin', tmp_path / 'tools.log'
    bin_dir.mkdir()
    log.touch()
    _stand_in(bin_dir, 'ip', log, status=link)
    _stand_in(bin_dir, 'ovs-vsctl', log)
    result = run_plugin(tmp_path, 'clean',
                        PATH=f'{bin_dir}{os.pathsep}{os.environ["PATH"]}',
                        TROVE_CONF_DIR=str(tmp_path / 'etc'), **settings)
    assert result.returncode == 0, result.stderr
    assert log.read_text().splitlines() == wanted


def test_clean_warns_when_the_interface_stays(tmp_path):
    bin_dir, log = tmp_path / 'bin', tmp_path / 'tools.log'
    bin_dir.mkdir()
    # ip shows the link and can not delete it; ovs-vsctl fails too
    (bin_dir / 'ip').write_text(
        f'#!/bin/sh\necho "ip $*" >> {log}\n'
        '[ "$2" = delete ] && exit 1\nexit 0\n')
    (bin_dir / 'ip').chmod(0o755)
    _stand_in(bin_dir, 'ovs-vsctl', log, status=1)
    result = run_plugin(tmp_path, 'clean',
                        PATH=f'{bin_dir}{os.pathsep}{os.environ["PATH"]}',
                        TROVE_CONF_DIR=str(tmp_path / 'etc'))
    assert result.returncode == 0, result.stderr
    assert 'Could not remove the interface trove-mgmt from br-int' in \
        result.stderr


def _documented_settings():
    """{setting: default} from doc/devstack-plugin.md's Settings table;
    ``A_B_X` / `_Y``` names A_B_X and A_B_Y."""
    doc = (harness.REPO / 'doc' / 'devstack-plugin.md').read_text()
    table = doc.split('\n## Settings\n', 1)[1].split('\n## ', 1)[0]
    documented = {}
    for line in table.splitlines():
        cells = [cell.strip() for cell in line.strip('|').split('|')]
        if len(cells) != 3 or not cells[0].startswith('`'):
            continue
        names = re.findall(r'`([A-Z0-9_]+)`', cells[0])
        prefix = names[0].rsplit('_', 1)[0]
        for name in names:
            documented[prefix + name if name.startswith('_') else name] = \
                cells[1]
    return documented


def test_every_setting_documented_with_its_default():
    settings = (harness.REPO / 'devstack' / 'settings').read_text()
    names = set(re.findall(r'\$\{((?:TROVE|TROVESTACK)_[A-Z0-9_]+)',
                           settings))
    documented = _documented_settings()
    assert sorted(names - set(documented)) == []
    assert all(documented[name] for name in names)
