"""The devstack plugin's phases, run against the real local control plane.

``tests/devstack/run-plugin`` sources the fake devstack library, this
plugin's settings and ``plugin.sh`` (see tests/devstack/harness.py for what
is real and what stands in for devstack).  The results are checked with
the real clients: ``openstack`` (image, datastore, flavor commands) and
the tempest.conf the plugin wrote.
"""

import configparser
import json
import sqlite3
import subprocess
import urllib.error
import urllib.request

import pytest

from tests.devstack import harness as harness_mod
from tests.load_image_support import make_qcow2_image

DATASTORES = (('mysql', '8.4'), ('postgresql', '17'))
IMAGE_NAMES = {f'trove-guest-debian-bookworm-{name}-{version}'
               for name, version in DATASTORES}
TEMPEST_FLAVORS = {'ds512M', 'ds1G', 'ds2G', 'ds4G'}
SERVICES = ('tr-api', 'tr-tmgr', 'tr-cond')


def openstack(plugin, *args, missing_ok=False):
    result = subprocess.run(
        [str(harness_mod.BIN / 'openstack'), '--os-cloud', 'devstack-admin',
         *args, '-f', 'json'],
        env=plugin.env(), capture_output=True, text=True, check=False,
        stdin=subprocess.DEVNULL, timeout=120)
    if missing_ok and 'HTTP 404' in result.stderr:
        return []
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def plugin_images(plugin):
    return [image for image in openstack(plugin, 'image', 'list', '--long')
            if image['Name'] in IMAGE_NAMES]


def datastore_versions(plugin, name, missing_ok=False):
    return openstack(plugin, 'datastore', 'version', 'list', name,
                     missing_ok=missing_ok)


def cloud_state(plugin):
    """What the plugin made: image ids, versions, flavors (with ids)."""
    return {
        'images': sorted((i['Name'], i['ID']) for i in plugin_images(plugin)),
        'versions': {name: sorted((v['Name'], v['ID'])
                                  for v in datastore_versions(plugin, name))
                     for name, _ in DATASTORES},
        'flavors': sorted((f['Name'], f['ID'])
                          for f in openstack(plugin, 'flavor', 'list',
                                             '--all')),
    }


def is_running(pid):
    try:
        with open(f'/proc/{pid}/stat') as stat:
            return stat.read().split(') ')[1][0] not in 'ZX'
    except (FileNotFoundError, IndexError):
        return False


@pytest.fixture(scope='module')
def plugin(local_cloud, tmp_path_factory):
    root = tmp_path_factory.mktemp('devstack')
    image = root / 'guest.qcow2'
    make_qcow2_image(image)
    harness = harness_mod.PluginHarness(
        local_cloud, root,
        TROVE_DATASTORES=','.join(f'{n}:{v}' for n, v in DATASTORES),
        TROVE_GUEST_IMAGE=str(image),
        TROVE_GUEST_OS='debian', TROVE_GUEST_RELEASE='bookworm',
        TROVE_TEST_CONF=str(root / 'trove-test.json'),
        # The local cloud's SQLite Trove database cannot store the 64-bit
        # maxima in MySQL's validation rules (Trove answers 500), so the
        # harness does not load configuration parameters.
        TROVE_LOAD_CONFIG_PARAMS='False')
    try:
        harness.first_run = harness.stack()
        harness.first_state = cloud_state(harness)
    except BaseException:
        harness.run('unstack', check=False)
        raise
    yield harness
    harness.run('unstack', check=False)


class TestStack:
    def test_install_uses_devstack_helpers(self, plugin):
        calls = plugin.calls()
        trove_dir = plugin.settings['TROVE_DIR']
        assert f'setup_develop {trove_dir}' in calls
        assert f'setup_develop {harness_mod.REPO}' in calls
        assert 'pip_install python-troveclient' in calls
        assert any(c.startswith(f'git_clone https://opendev.org/openstack/'
                                f'trove.git {trove_dir} master')
                   for c in calls)

    def test_images_uploaded_once(self, plugin):
        images = plugin_images(plugin)
        assert sorted(i['Name'] for i in images) == sorted(IMAGE_NAMES)
        for image in images:
            shown = openstack(plugin, 'image', 'show', image['ID'])
            assert shown['status'] == 'active'
            assert 'trove' in shown['tags']
            assert shown['visibility'] == 'public'

    def test_datastore_versions_registered_and_default(self, plugin):
        for name, version in DATASTORES:
            versions = datastore_versions(plugin, name)
            assert [v['Name'] for v in versions] == [version]
            shown = openstack(plugin, 'datastore', 'show', name)
            assert shown['default_version'] in (version, versions[0]['ID'])

    def test_flavors_created(self, plugin):
        names = [f['Name'] for f in openstack(plugin, 'flavor', 'list',
                                              '--all')]
        assert TEMPEST_FLAVORS <= set(names)

    def test_tempest_conf(self, plugin):
        parser = configparser.ConfigParser()
        parser.read(plugin.tempest_conf)
        database = parser['database']
        assert set(database['enabled_datastores'].split(',')) == {
            name for name, _ in DATASTORES}
        assert set(database['default_datastore_versions'].split(',')) == {
            f'{n}:{v}' for n, v in DATASTORES}
        assert parser['service_available']['trove'].lower() == 'true'
        assert (plugin.root / 'trove-test.json').exists()

    def test_trove_conf_and_db_sync(self, plugin):
        parser = configparser.ConfigParser(interpolation=None)
        parser.read(plugin.conf_dir / 'trove.conf')
        assert parser['DEFAULT']['default_datastore'] == 'mysql'
        assert parser['DEFAULT']['transport_url'] == 'fake:/'
        assert parser['keystone_authtoken']['username'] == 'trove'
        assert parser['service_credentials']['region_name'] == 'RegionOne'
        assert (plugin.conf_dir / 'trove-guestagent.conf').exists()
        assert (plugin.conf_dir / 'api-paste.ini').exists()
        database = parser['database']['connection'].removeprefix(
            'sqlite:///')
        with sqlite3.connect(database) as db:
            tables = {row[0] for row in db.execute(
                "SELECT name FROM sqlite_master WHERE type='table'")}
        assert {'datastores', 'datastore_versions', 'instances'} <= tables

    def test_services_running_and_api_answers(self, plugin):
        for service in SERVICES:
            assert is_running(plugin.pid(service)), service
        url = f'http://127.0.0.1:{plugin.api_port}/'
        try:
            urllib.request.urlopen(url, timeout=10)
        except urllib.error.HTTPError as exc:  # any HTTP answer will do
            assert exc.code < 500

    def test_secrets_not_traced(self, plugin):
        password = plugin.settings['SERVICE_PASSWORD']
        for result in plugin.first_run:
            assert '+ ' in result.stderr  # xtrace was on
            assert password not in result.stdout + result.stderr

    def test_endpoint_in_catalog(self, plugin):
        endpoints = openstack(plugin, 'endpoint', 'list',
                              '--service', 'database')
        assert {e['Interface'] for e in endpoints} >= {'public'}

    def test_second_run_changes_nothing(self, plugin):
        plugin.stack()
        assert cloud_state(plugin) == plugin.first_state


class TestUnstackAndClean:
    def test_unstack_stops_services(self, plugin):
        pids = [plugin.pid(service) for service in SERVICES]
        plugin.run('unstack')
        assert not any(is_running(pid) for pid in pids)
        assert all(plugin.pid(service) is None for service in SERVICES)

    def test_clean_removes_state(self, plugin):
        state_dir = plugin.root / 'data' / 'trovestack'
        plugin.run('clean')
        assert not state_dir.exists()
        assert not (plugin.conf_dir / 'trove.conf').exists()
        assert not (plugin.conf_dir / 'trove-guestagent.conf').exists()

    def test_clean_removes_cloud_resources(self, plugin):
        assert plugin_images(plugin) == []
        for name, _ in DATASTORES:  # the datastore itself may be gone
            assert datastore_versions(plugin, name, missing_ok=True) == []
        flavors = {f['Name'] for f in openstack(plugin, 'flavor', 'list',
                                                '--all')}
        assert not any(name.startswith('test.') for name in flavors)

    def test_clean_twice_is_harmless(self, plugin):
        plugin.run('clean')
