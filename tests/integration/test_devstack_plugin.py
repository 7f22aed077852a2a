"""The devstack plugin's phases, run against the real local control plane.

``tests/devstack/run-plugin`` sources the fake devstack library, this
plugin's settings and ``plugin.sh`` (see tests/devstack/harness.py for what
is real and what stands in for devstack).  The results are checked with
the real clients, openstacksdk and python-troveclient (in this process),
and in the files the plugin wrote.
"""

import configparser
import re
import shutil
import sqlite3
import subprocess
import urllib.error
import urllib.request

import pytest
from troveclient import exceptions as trove_exceptions

from tests.devstack import harness as harness_mod
from tests.load_image_support import make_qcow2_image
from trovestack.common import connection
from trovestack.testenv import quotas as testenv_quotas
from trovestack.trove import instance_prereqs
from trovestack.trove import trove_config

# Two versions of mysql: the first listed becomes its default.
DATASTORES = (('mysql', '8.4'), ('postgresql', '17'), ('mysql', '8.0'))
DATASTORE_NAMES = ('mysql', 'postgresql')
# One guest image serves every datastore: one Glance image, named after
# the image file (guest.qcow2), as provision names it.
IMAGE_NAMES = {'guest'}
TEMPEST_FLAVORS = {'ds512M', 'ds1G', 'ds2G', 'ds4G'}
# The given image's user as for an image Trove's own tooling built.
GUEST_USER = 'ubuntu'
# Written as given; the API-only cloud has no Cinder to look it up in.
VOLUME_TYPE = 'ceph'
SERVICES = ('tr-api', 'tr-tmgr', 'tr-cond')


class Clients:
    """The cloud as the plugin's admin sees it, through openstacksdk and
    python-troveclient in this process (a client start per check would
    cost more than the checks)."""

    def __init__(self, cloud):
        self.conn = cloud.connection(cloud.admin_cloud)
        self.trove = connection.trove_client(self.conn)


def clients(plugin):
    if getattr(plugin, 'clients', None) is None:
        plugin.clients = Clients(plugin.local_cloud)
    return plugin.clients


def plugin_images(plugin):
    return [image for image in clients(plugin).conn.image.images()
            if image.name in IMAGE_NAMES]


def image_ids(plugin):
    return sorted(image.id for image in clients(plugin).conn.image.images())


def datastore_versions(plugin, name, missing_ok=False):
    try:
        return sorted((v.name, v.id) for v in
                      clients(plugin).trove.datastore_versions.list(name))
    except trove_exceptions.NotFound:
        if missing_ok:
            return []
        raise


def flavors(plugin):
    return sorted((f.name, f.id) for f in
                  clients(plugin).conn.compute.flavors(is_public=None))


def cloud_state(plugin):
    """What the plugin made: image ids, versions, flavors (with ids)."""
    return {
        'images': sorted((i.name, i.id) for i in plugin_images(plugin)),
        'versions': {name: datastore_versions(plugin, name)
                     for name in DATASTORE_NAMES},
        'flavors': flavors(plugin),
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
        TROVE_GUEST_IMAGE_USER=GUEST_USER, TROVE_VOLUME_TYPE=VOLUME_TYPE,
        TROVE_MAX_ACCEPTED_VOLUME_SIZE='20',
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
        assert f'setup_develop {harness_mod.REPO} image-builder' in calls
        assert 'pip_install python-troveclient' in calls
        assert any(c.startswith(f'git_clone https://opendev.org/openstack/'
                                f'trove.git {trove_dir} master')
                   for c in calls)

    def test_one_image_uploaded_once(self, plugin):
        images = plugin_images(plugin)
        assert sorted(i.name for i in images) == sorted(IMAGE_NAMES)
        for image in images:
            assert image.status == 'active'
            assert 'trove' in image.tags
            assert image.visibility == 'public'

    def test_datastore_versions_registered_first_is_default(self, plugin):
        for name in DATASTORE_NAMES:
            wanted = [v for n, v in DATASTORES if n == name]
            versions = dict(datastore_versions(plugin, name))
            assert sorted(versions) == sorted(wanted)
            shown = clients(plugin).trove.datastores.get(name)
            assert shown.default_version in (wanted[0], versions[wanted[0]])

    def test_flavors_created(self, plugin):
        assert TEMPEST_FLAVORS <= {name for name, _ in flavors(plugin)}

    def test_tempest_conf(self, plugin):
        parser = configparser.ConfigParser()
        parser.read(plugin.tempest_conf)
        database = parser['database']
        assert set(database['enabled_datastores'].split(',')) == set(
            DATASTORE_NAMES)
        assert set(database['default_datastore_versions'].split(',')) == {
            'mysql:8.4', 'postgresql:17'}
        assert parser['service_available']['trove'].lower() == 'true'
        assert (plugin.root / 'trove-test.json').exists()

    def test_trove_conf_and_db_sync(self, plugin):
        parser = configparser.ConfigParser(interpolation=None)
        parser.read(plugin.conf_dir / 'trove.conf')
        assert parser['DEFAULT']['default_datastore'] == 'mysql'
        assert parser['DEFAULT']['transport_url'] == 'fake:/'
        assert parser['keystone_authtoken']['username'] == 'trove'
        assert parser['service_credentials']['region_name'] == 'RegionOne'
        assert (plugin.conf_dir / 'api-paste.ini').exists()
        database = parser['database']['connection'].removeprefix(
            'sqlite:///')
        with sqlite3.connect(database) as db:
            tables = {row[0] for row in db.execute(
                "SELECT name FROM sqlite_master WHERE type='table'")}
        assert {'datastores', 'datastore_versions', 'instances'} <= tables

    def test_instance_options_from_trove_config(self, plugin):
        """trove_config's options, as the compute cloud writes them."""
        settings = trove_config.InstanceSettings(
            docker_images=trove_config.docker_images(DATASTORE_NAMES),
            guest_user=GUEST_USER, volume_type=VOLUME_TYPE)
        wanted = trove_config.instance_config(settings)
        wanted[trove_config.TROVE_CONF]['DEFAULT'].update(
            trove_config.limits_config({'max_accepted_volume_size': 20})[
                trove_config.TROVE_CONF]['DEFAULT'])
        for name, sections in wanted.items():
            parser = configparser.ConfigParser(interpolation=None)
            parser.read(plugin.conf_dir / name)
            for section, options in sections.items():
                for option, value in options.items():
                    assert parser[section][option] == value, (name, option)
        guest = configparser.ConfigParser(interpolation=None)
        guest.read(plugin.conf_dir / 'trove-guestagent.conf')
        assert guest['mysql']['docker_image'] == \
            'quay.io/openstack.trove/mysql'
        # guests get no service credentials (Trove 26's agent needs none)
        assert not guest.has_section('service_credentials')
        assert plugin.settings['SERVICE_PASSWORD'] not in (
            plugin.conf_dir / 'trove-guestagent.conf').read_text()
        # the local cloud has no network service: no management network
        server = configparser.ConfigParser(interpolation=None)
        server.read(plugin.conf_dir / 'trove.conf')
        assert 'management_networks' not in server['DEFAULT']

    def test_volume_type_not_looked_up_without_cinder(self, plugin):
        extra = plugin.first_run[3].stdout
        [line] = [line for line in extra.splitlines()
                  if 'volume-type' in line]
        assert VOLUME_TYPE in line and 'skipped' in line

    def test_trove_services_restarted_after_configuration(self, plugin):
        calls = plugin.first_run[3].stdout
        assert calls.index('Provisioning Trove') < \
            calls.index('Starting Trove')

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

    def test_guest_agent_source_reaches_the_extra_phase(self, plugin):
        """The default: the agent from $TROVE_DIR (a given image is not
        built, but the orchestration is told all the same)."""
        extra = next(line for line in plugin.first_run[3].stderr.splitlines()
                     if '/trovestack devstack-extra ' in line) + ' '
        trove_dir = plugin.settings['TROVE_DIR']
        assert ' --guest-agent-source local ' in extra
        assert f' --guest-agent-path {trove_dir} ' in extra

    def test_endpoint_in_catalog(self, plugin):
        conn = clients(plugin).conn
        service = next(s for s in conn.identity.services()
                       if s.type == 'database')
        endpoints = conn.identity.endpoints(service_id=service.id)
        assert {e.interface for e in endpoints} >= {'public'}

    def test_second_run_changes_nothing(self, plugin):
        plugin.stack()
        assert cloud_state(plugin) == plugin.first_state


class TestUnstackAndClean:
    def test_unstack_stops_services_keeps_cloud_resources(self, plugin):
        pids = [plugin.pid(service) for service in SERVICES]
        plugin.run('unstack')
        assert not any(is_running(pid) for pid in pids)
        assert all(plugin.pid(service) is None for service in SERVICES)
        assert plugin_images(plugin) != []

    def test_clean_removes_local_state_and_config_only(self, plugin):
        state_dir = plugin.root / 'data' / 'trovestack'
        assert state_dir.exists()
        result = plugin.run('clean')
        assert not state_dir.exists()
        assert not (plugin.conf_dir / 'trove.conf').exists()
        assert not (plugin.conf_dir / 'trove-guestagent.conf').exists()
        # clean runs with the cloud down: it neither calls nor claims to
        # have removed cloud resources
        assert 'trovestack clean' not in result.stderr
        assert 'image' not in result.stdout.lower()
        assert plugin_images(plugin) != []

    def test_unstack_can_remove_cloud_resources(self, plugin):
        plugin.settings['TROVE_UNSTACK_REMOVES_RESOURCES'] = 'True'
        try:
            plugin.run('unstack')
        finally:
            del plugin.settings['TROVE_UNSTACK_REMOVES_RESOURCES']
        assert plugin_images(plugin) == []
        for name in DATASTORE_NAMES:  # the datastore itself may be gone
            assert datastore_versions(plugin, name, missing_ok=True) == []
        assert not any(name.startswith('test.')
                       for name, _ in flavors(plugin))

    def test_clean_twice_is_harmless(self, plugin):
        plugin.run('clean')


SAMPLES = sorted((harness_mod.REPO / 'samples' / 'localrc').glob('*.conf'))


def _sample_params():
    for sample in SAMPLES:
        marks = []
        if 'TROVE_DATASTORE_IMAGE_SOURCE=registry' in sample.read_text():
            # builds datastore images from Debian packages, runs a registry
            marks.append(pytest.mark.datastore_image)
        yield pytest.param(sample, marks=marks, id=sample.stem)


def _localrc_value(text, key):
    match = re.search(rf'^{key}=(\S+)$', text, re.M)
    return match.group(1) if match else None


# ------------------------------------------------------------------------
# Against Neutron: the compute-enabled local cloud (the compute_cloud
# fixture, one per machine).  The plugin's stack phases converge Trove's
# instance prerequisites where Trove looks for them, write them into
# trove.conf, and a second run duplicates nothing.
# ------------------------------------------------------------------------
def _keygen(path):
    subprocess.run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-f',
                    str(path)], check=True)
    return path.with_suffix('.pub')


MGMT = 'plugin-mgmt'
MGMT_CIDR = '192.168.253.0/24'
VERSION = '11.8-plugin'


def _management_settings(tmp_path):
    """The plugin's management network settings on the compute cloud.

    Names of its own: the session's compute cloud also serves the compute
    tests' provision (trove-mgmt, mariadb 11.8 on a real guest).  Its OVS
    runs in the cloud's namespace: no port of this host is plugged into a
    bridge here.
    """
    return dict(
        TROVE_MGMT_NETWORK_NAME=MGMT, TROVE_MGMT_SECURITY_GROUP=MGMT,
        TROVE_MGMT_KEYPAIR_NAME=MGMT, TROVE_MGMT_SUBNET_RANGE=MGMT_CIDR,
        TROVE_MGMT_PUBLIC_KEY=str(_keygen(tmp_path / 'id_trove')),
        TROVE_MGMT_HOST_PORT='')


def _prerequisites(conn, service_id):
    """Everything named plugin-mgmt* in the service project, with ids."""
    def named(resources):
        return sorted((r.name, r.id) for r in resources
                      if r.name.startswith(MGMT))
    return {
        'networks': named(conn.network.networks(project_id=service_id)),
        'subnets': named(conn.network.subnets(project_id=service_id)),
        'groups': named(conn.network.security_groups(project_id=service_id)),
        'images': sorted(i.id for i in conn.image.images()),
    }


@pytest.mark.compute
@pytest.mark.parametrize('sample', _sample_params())
def test_sample_runs_every_phase_and_converges(compute_cloud, tmp_path,
                                                sample):
    """Each sample's settings through stack (twice), unstack and clean on
    the compute-enabled cloud, with a small stand-in guest image instead
    of a diskimage-builder build (the build itself is
    tests/integration/test_image_build.py's).  Unstack keeps the cloud's
    resources, devstack's default: the test flavors are the compute tests'
    too (removal is tested by the API cloud's plugin tests)."""
    text = sample.read_text()
    if 'registry' == _localrc_value(text, 'TROVE_DATASTORE_IMAGE_SOURCE'):
        for tool in ('mmdebstrap', 'docker-registry', 'skopeo'):
            if shutil.which(tool) is None:
                pytest.skip(f'{tool} is not installed')
    image = tmp_path / 'guest.qcow2'
    make_qcow2_image(image)
    local_conf = tmp_path / 'local.conf'
    registry_port = harness_mod.free_port()
    local_conf.write_text(
        text + f'\nTROVE_GUEST_IMAGE={image}\n'
        'TROVE_LOAD_CONFIG_PARAMS=False\n'
        f'TROVE_DATASTORE_REGISTRY=127.0.0.1:{registry_port}\n')
    plugin = harness_mod.PluginHarness(
        compute_cloud, tmp_path, **_management_settings(tmp_path))
    conn = clients(plugin).conn
    service = conn.identity.find_project('service')
    phases = ('pre-install', 'install', 'post-config', 'extra',
              'test-config')
    datastores = [entry.split(':') for entry in _localrc_value(
        text, 'TROVE_DATASTORES').split(',')]
    try:
        for phase in phases:
            plugin.run('stack', phase, local_conf=local_conf)
        first = {name: datastore_versions(plugin, name)
                 for name, _ in datastores}
        prerequisites = _prerequisites(conn, service.id)
        plugin.run('stack', 'extra', local_conf=local_conf)
        assert {name: datastore_versions(plugin, name)
                for name, _ in datastores} == first
        assert _prerequisites(conn, service.id) == prerequisites
        guest = configparser.ConfigParser(interpolation=None)
        guest.read(plugin.conf_dir / 'trove-guestagent.conf')
        source = _localrc_value(text, 'TROVE_DATASTORE_IMAGE_SOURCE') \
            or 'upstream'
        expected = trove_config.docker_images(
            [name for name, _ in datastores], source=source,
            registry=f'127.0.0.1:{registry_port}')
        for name, repository in expected.items():
            assert guest[name]['docker_image'] == repository
        if source == 'registry':
            # Backups from the same registry, built from the same Trove.
            backups = trove_config.backup_docker_images(
                list(expected), source='registry',
                registry=f'127.0.0.1:{registry_port}')
            for name, repository in backups.items():
                assert guest[name]['backup_docker_image'] == repository
        server = configparser.ConfigParser(interpolation=None)
        server.read(plugin.conf_dir / 'trove.conf')
        assert server['DEFAULT']['injected_config_owner'] == (
            _localrc_value(text, 'TROVE_GUEST_IMAGE_USER')
            or trove_config.GUEST_USER)
        network = conn.network.find_network(MGMT, project_id=service.id)
        assert server['DEFAULT']['management_networks'] == network.id
        plugin.run('unstack', local_conf=local_conf)
        plugin.run('clean', local_conf=local_conf)
        assert not (plugin.conf_dir / 'trove.conf').exists()
        assert conn.network.find_network(MGMT, project_id=service.id)
    finally:
        plugin.run('unstack', local_conf=local_conf, check=False)


@pytest.mark.compute
def test_stack_converges_instance_prerequisites_on_neutron(
        compute_cloud, tmp_path):
    image = tmp_path / 'guest.qcow2'
    make_qcow2_image(image)
    plugin = harness_mod.PluginHarness(
        compute_cloud, tmp_path, TROVE_DATASTORES=f'mariadb:{VERSION}',
        TROVE_GUEST_IMAGE=str(image), TROVE_GUEST_OS='debian',
        TROVE_GUEST_RELEASE='bookworm', TROVE_LOAD_CONFIG_PARAMS='False',
        TROVE_VOLUME_SUPPORT='False', **_management_settings(tmp_path))
    conn = clients(plugin).conn
    service = conn.identity.find_project('service')
    trove_user = conn.identity.find_user('trove')
    try:
        plugin.stack()
        first = _prerequisites(conn, service.id)
        network = conn.network.find_network(MGMT, project_id=service.id)
        subnet = conn.network.find_subnet(f'{MGMT}-subnet',
                                          network_id=network.id)
        assert subnet.cidr == MGMT_CIDR
        assert subnet.gateway_ip is None
        group = conn.network.find_security_group(MGMT,
                                                 project_id=service.id)
        rules = {(r.protocol, r.port_range_min) for r in
                 conn.network.security_group_rules(security_group_id=group.id)
                 if r.direction == 'ingress'}
        assert {(r.protocol, r.port)
                for r in instance_prereqs.DEFAULT_RULES} <= rules
        keypair = conn.compute.find_keypair(MGMT, user_id=trove_user.id)
        assert keypair is not None
        quota = conn.compute.get_quota_set(service.id)
        wanted = {w.resource: w.minimum for w in testenv_quotas.wanted()
                  if w.project == 'service' and w.service == 'compute'}
        for resource, minimum in wanted.items():
            value = getattr(quota, resource)
            assert value == -1 or value >= minimum, resource

        server = configparser.ConfigParser(interpolation=None)
        server.read(plugin.conf_dir / 'trove.conf')
        assert server['DEFAULT']['management_networks'] == network.id
        assert server['DEFAULT']['management_security_groups'] == group.id
        assert server['DEFAULT']['nova_keypair'] == MGMT
        guest = configparser.ConfigParser(interpolation=None)
        guest.read(plugin.conf_dir / 'trove-guestagent.conf')
        assert guest['mariadb']['docker_image']

        plugin.stack()
        assert _prerequisites(conn, service.id) == first
        assert [name for name, _ in datastore_versions(plugin, 'mariadb')
                if name == VERSION] == [VERSION]
    finally:
        # Services only: removing resources would take the compute tests'
        # images and versions too.
        plugin.run('unstack', check=False)


@pytest.mark.compute
@pytest.mark.guest_boot
@pytest.mark.extra_instance
def test_instance_reaches_active_with_plugin_configuration(
        compute_cloud, tmp_path, tmp_path_factory):
    """Issue 15's proof through the lifecycle (CI's one instance is the
    gate scenario on the plugin's configuration, in test_compute): with
    Trove run by the plugin's stack phases, an instance goes through its
    lifecycle: ACTIVE, database and user, an answer on its address,
    deleted with its ports."""
    from tests.integration import guest_images
    from tests.integration import lifecycle_support
    from tests.integration import plugin_on_compute
    from tests.integration import test_compute as compute_tests

    cstate = compute_cloud.cstate
    image, _ = guest_images.compute_image(tmp_path_factory)
    with plugin_on_compute.plugin_trove(
            compute_cloud, tmp_path, image,
            [f'{compute_tests.DATASTORE}:{compute_tests.VERSION}']) as plugin:
        guest = configparser.ConfigParser(interpolation=None)
        guest.read(plugin.conf_dir / 'trove-guestagent.conf')
        assert f'@{cstate.gateway}:' in guest['DEFAULT']['transport_url']
        where = lifecycle_support.Where(
            conn=clients(plugin).conn, namespace=compute_cloud.namespace,
            logs=plugin_on_compute.service_logs(plugin),
            instances_dir=str(compute_cloud.layer.paths.instances_dir))
        timeline = lifecycle_support.run_lifecycle(
            where, datastore=compute_tests.DATASTORE,
            version=compute_tests.VERSION, flavor=compute_tests.FLAVOR,
            volume_size=compute_tests.VOLUME_SIZE)
        assert any(stage.startswith('deleted') for stage in timeline), \
            timeline
