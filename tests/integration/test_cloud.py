"""The local control plane, driven through ``trovestack cloud`` and used
with the real OpenStack clients."""

import configparser
import os
import pathlib
import shutil
import socket
import urllib.request

import pytest
import yaml

from tests.helpers import run
from tests.helpers import run_json
from trovestack.cloud import layout
from trovestack.cloud import processes
from trovestack.cloud import rabbitmq


def _our_processes(state_dir):
    """Pids whose command line or environment mentions state_dir (RabbitMQ's
    epmd and wrapper name it only in their environment)."""
    found = []
    for proc in pathlib.Path('/proc').iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            seen = (proc / 'cmdline').read_bytes() + \
                (proc / 'environ').read_bytes()
            stat = (proc / 'stat').read_text()
        except OSError:
            continue
        if str(state_dir).encode() in seen and \
                stat.rsplit(')', 1)[1].split()[0] != 'Z':
            found.append(int(proc.name))
    return found


def test_real_clients_see_every_service(local_cloud):
    env = local_cloud.env()
    catalog = run_json('openstack', '--os-cloud', local_cloud.admin_cloud,
                       'catalog', 'list', env=env)
    assert {c['Type'] for c in catalog} == {
        'identity', 'image', 'compute', 'database'}
    assert run_json('openstack', '--os-cloud', local_cloud.demo_cloud,
                    'image', 'list', env=env) is not None
    assert isinstance(run_json('openstack', '--os-cloud',
                               local_cloud.admin_cloud, 'datastore', 'list',
                               env=env), list)
    users = {u['Name'] for u in run_json(
        'openstack', '--os-cloud', local_cloud.admin_cloud, 'user', 'list',
        env=env)}
    assert {'admin', 'demo', 'glance', 'nova', 'trove'} <= users


def test_status_and_env_commands(local_cloud):
    state_dir = local_cloud.state_dir
    rows = run_json('trovestack', 'cloud', 'status', '--state-dir', state_dir)
    assert {r['Service']: r['State'] for r in rows} == {
        'keystone': 'running', 'glance': 'running', 'nova': 'running',
        'trove': 'running', 'rabbitmq': 'running',
        'trove-taskmanager': 'running', 'trove-conductor': 'running'}
    out = run('trovestack', 'cloud', 'env', '--state-dir', state_dir).stdout
    assert f'export OS_CLIENT_CONFIG_FILE={local_cloud.clouds_yaml}' in out
    assert 'export OS_CLOUD=trovestack-admin' in out
    secrets = yaml.safe_load(local_cloud.clouds_yaml.read_text())
    for cloud in secrets['clouds'].values():
        assert cloud['auth']['password'] not in out


def test_trove_and_nova_talk_over_the_clouds_own_rabbitmq(local_cloud):
    broker = local_cloud.cloud.broker
    assert broker.host == layout.HOST
    for service in ('trove', 'nova'):
        conf = configparser.ConfigParser(interpolation=None)
        conf.read(local_cloud.config_file(service))
        assert conf['DEFAULT']['transport_url'] == broker.transport_url()
    # The broker knows only its own user: RabbitMQ's guest was never made.
    guest = rabbitmq.Broker(broker.host, broker.port, 'guest', 'guest', '/',
                            broker.data_dir)
    with pytest.raises(rabbitmq.BrokerError, match='ACCESS_REFUSED'):
        rabbitmq.queue_consumers(guest, ['taskmanager'])
    consumers = rabbitmq.queue_consumers(
        broker, ['taskmanager', 'trove-conductor'])
    assert all(consumers.values()), consumers


def test_debug_output_and_logs_never_show_passwords(local_cloud):
    state_dir = local_cloud.state_dir
    result = run('trovestack', '--debug', 'cloud', 'up', '--state-dir',
                 state_dir)
    result_status = run('trovestack', '--debug', 'cloud', 'status',
                        '--state-dir', state_dir)
    state = local_cloud.cloud.state
    secrets = [local_cloud.cloud.broker.password, state.admin_password,
               state.demo_password, state.service_password]
    texts = [result.stdout, result.stderr, result_status.stdout,
             result_status.stderr]
    texts += [log.read_text(errors='replace')
              for log in (state_dir / 'logs').iterdir()]
    texts += [log.read_text(errors='replace')
              for log in (state_dir / 'rabbitmq' / 'log').iterdir()]
    for secret in secrets:
        assert not [text for text in texts if secret in text]


@pytest.mark.skipif(shutil.which('docker-registry') is None,
                    reason='docker-registry is not installed')
def test_registry_option_adds_and_removes_a_registry(local_cloud):
    state_dir = local_cloud.state_dir
    rows = run_json('trovestack', 'cloud', 'up', '--state-dir', state_dir,
                    '--registry')
    states = {r['Service']: r['State'] for r in rows}
    assert states['registry'] == 'running'
    url = next(r['URL'] for r in rows if r['Service'] == 'registry')
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.status == 200
    rows = run_json('trovestack', 'cloud', 'status', '--state-dir', state_dir)
    assert {r['Service']: r['State'] for r in rows}['registry'] == 'running'

    rows = run_json('trovestack', 'cloud', 'up', '--state-dir', state_dir,
                    '--no-registry')
    assert 'registry' not in {r['Service'] for r in rows}
    assert set({r['State'] for r in rows}) == {'running'}
    assert not processes.http_answers(url)


def test_status_without_a_cloud_fails_clearly(tmp_path):
    result = run('trovestack', 'cloud', 'status', '--state-dir',
                 tmp_path / 'none', check=False)
    assert result.returncode != 0
    assert 'no local cloud' in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.fixture(scope='module')
def lifecycle_dir(tmp_path_factory):
    state_dir = tmp_path_factory.mktemp('lifecycle')
    yield state_dir
    run('trovestack', 'cloud', 'down', '--state-dir', state_dir, check=False)


def test_lifecycle_restart_keeps_data_and_fresh_wipes(lifecycle_dir,
                                                      tmp_path):
    clouds = tmp_path / 'user-clouds.yaml'
    clouds.write_text(yaml.safe_dump({'clouds': {'other': {'auth': {}}}}))
    up = ('trovestack', 'cloud', 'up', '--state-dir', lifecycle_dir,
          '--base-port', '0', '--clouds-yaml', clouds)
    run_json(*up)
    merged = yaml.safe_load(clouds.read_text())['clouds']
    assert {'other', 'trovestack-admin', 'trovestack-demo'} <= set(merged)
    env = {'OS_CLIENT_CONFIG_FILE': str(clouds), 'PATH': '/usr/bin:/bin'}
    run('openstack', '--os-cloud', 'trovestack-admin', 'flavor', 'create',
        '--ram', '64', '--disk', '0', '--vcpus', '1', 'keep-me', env=env)

    # What provision adds to trove.conf (instances on the compute cloud)
    # outlives a restart; the cloud's own options are written again.
    trove_conf = layout.Layout(lifecycle_dir).config_dir('trove') \
        / 'trove.conf'
    added = trove_conf.read_text().replace(
        '[DEFAULT]\n', '[DEFAULT]\nmanagement_networks = net-kept\n', 1)
    trove_conf.write_text(added.replace('trove_api_workers = 1',
                                        'trove_api_workers = 7'))

    down = run_json('trovestack', 'cloud', 'down', '--state-dir',
                    lifecycle_dir)
    assert {r['Result'] for r in down} == {'stopped'}
    assert _our_processes(lifecycle_dir) == []

    setup_log = lifecycle_dir / 'logs' / 'keystone-setup.log'
    setup_mtime = setup_log.stat().st_mtime
    rows = run_json(*up)
    assert {r['State'] for r in rows} == {'running'}
    assert setup_log.stat().st_mtime == setup_mtime, 'bootstrapped again'
    kept = configparser.ConfigParser(interpolation=None)
    kept.read(trove_conf)
    assert kept['DEFAULT']['management_networks'] == 'net-kept'
    assert kept['DEFAULT']['trove_api_workers'] == '1'
    flavors = run_json('openstack', '--os-cloud', 'trovestack-admin',
                       'flavor', 'list', env=env)
    assert 'keep-me' in {f['Name'] for f in flavors}

    run_json(*up, '--fresh')
    flavors = run_json('openstack', '--os-cloud', 'trovestack-admin',
                       'flavor', 'list', env=env)
    assert 'keep-me' not in {f['Name'] for f in flavors}
    assert 'other' in yaml.safe_load(clouds.read_text())['clouds']


def test_port_in_use_is_a_clear_error(tmp_path):
    with socket.socket() as sock:
        sock.bind((layout.HOST, 0))
        sock.listen()
        port = sock.getsockname()[1]
        result = run('trovestack', 'cloud', 'up', '--state-dir', tmp_path,
                     '--base-port', port, check=False)
    assert result.returncode == 1
    assert f'port {port} (keystone) on 127.0.0.1 is in use' in result.stderr
    assert _our_processes(tmp_path) == []


def test_service_that_fails_to_start_stops_everything(lifecycle_dir):
    run('trovestack', 'cloud', 'down', '--state-dir', lifecycle_dir)
    (lifecycle_dir / 'nova' / 'nova.db').write_bytes(b'not a database' * 100)
    result = run('trovestack', 'cloud', 'up', '--state-dir', lifecycle_dir,
                 check=False)
    assert result.returncode == 1
    assert 'nova exited during start-up; last lines of' in result.stderr
    assert _our_processes(lifecycle_dir) == []
