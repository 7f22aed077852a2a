"""The dashboard's settings (trovestack.cloud.dashboard): what the cloud
writes for Horizon, kept private and stable, and what Horizon's own
settings module makes of it."""

import json
import subprocess
import sys

import pytest

from trovestack.cloud import configs
from trovestack.cloud import controlplane
from trovestack.cloud import dashboard
from trovestack.cloud import layout
from trovestack.cloud import processes
from trovestack.cloud import services


@pytest.fixture
def cloud(tmp_path):
    """(layout, state) of a cloud with the dashboard on, never started."""
    lay = layout.Layout(tmp_path / 'state')
    state = layout.CloudState.new(0, tmp_path / 'clouds.yaml',
                                  services.PORTED)
    state.dashboard = True
    state.add_ports([*services.PORTED, dashboard.NAME])
    return lay, state


def test_settings_point_horizon_at_the_clouds_keystone_and_files(cloud):
    lay, state = cloud
    values = dashboard.settings(state, lay)
    assert values['OPENSTACK_KEYSTONE_URL'] == configs.identity_url(state)
    assert values['DEBUG'] is False
    assert values['SESSION_ENGINE'].endswith('.file')
    assert values['CACHES']['default']['BACKEND'].endswith('FileBasedCache')
    root = str(lay.service_dir('dashboard'))
    for path in (values['SESSION_FILE_PATH'], values['STATIC_ROOT'],
                 values['CACHES']['default']['LOCATION']):
        assert path.startswith(root + '/')
    assert values['COMPRESS_OFFLINE'] is True
    assert set(values['ALLOWED_HOSTS']) >= {'127.0.0.1', 'localhost'}


def test_written_settings_are_private_python_without_secrets(cloud):
    lay, state = cloud
    dashboard.write_settings(state, lay)
    paths = dashboard.paths(lay)
    text = paths['settings'].read_text()
    compile(text, str(paths['settings']), 'exec')
    key = paths['secret_key'].read_text()
    assert len(key) >= 40
    for secret in (key, state.admin_password, state.demo_password,
                   state.service_password):
        assert secret not in text
    for path in (paths['settings'], paths['secret_key']):
        assert path.stat().st_mode & 0o777 == 0o600
    assert (paths['etc'] / 'local' / '__init__.py').exists()


def test_writing_again_keeps_the_key_and_the_file(cloud):
    lay, state = cloud
    dashboard.write_settings(state, lay)
    paths = dashboard.paths(lay)
    key = paths['secret_key'].read_text()
    written = paths['settings'].stat().st_mtime_ns
    dashboard.write_settings(state, lay)
    assert paths['secret_key'].read_text() == key
    assert paths['settings'].stat().st_mtime_ns == written


def test_static_files_are_collected_again_only_when_settings_change(cloud):
    lay, state = cloud
    dashboard.write_settings(state, lay)
    assert dashboard.needs_setup(lay)
    static = dashboard.paths(lay)['static']
    static.mkdir(parents=True)
    (static / dashboard.STAMP).write_text(dashboard.stamp(lay))
    assert not dashboard.needs_setup(lay)
    state.ports['keystone'] += 1
    dashboard.write_settings(state, lay)
    assert dashboard.needs_setup(lay)


def test_program_serves_horizon_on_loopback_after_its_setup(cloud):
    lay, state = cloud
    program = dashboard.program(state, lay)
    assert program.argv[1:4] == ['-m', 'trovestack.cloud.wsgi_server',
                                 'openstack_dashboard.wsgi:application']
    assert program.argv[4] == \
        f'{processes.LOOPBACK}:{state.ports[dashboard.NAME]}'
    assert program.needs == (dashboard.SETUP_STEP,)
    assert program.env == dashboard.environment(lay)
    assert dashboard.url(state) == \
        f'http://127.0.0.1:{state.ports[dashboard.NAME]}/'


def test_the_cloud_lists_and_ports_the_dashboard_only_when_enabled(cloud):
    lay, state = cloud
    local = controlplane.LocalCloud(lay.root)
    assert local._names(state)[-1] == dashboard.NAME
    assert local._port_names(state)[-1] == dashboard.NAME
    state.dashboard = False
    assert dashboard.NAME not in local._names(state)
    assert dashboard.NAME not in local._port_names(state)


def test_an_older_state_has_no_dashboard(tmp_path):
    lay = layout.Layout(tmp_path)
    lay.state_file.write_text(json.dumps({
        'ports': {'keystone': 1}, 'admin_password': 'a',
        'demo_password': 'd', 'service_password': 's',
        'clouds_yaml': '/c.yaml'}))
    assert lay.load_state().dashboard is False


SHOW = '''
import json
import django
django.setup()
from django.conf import settings as s
panels = [c.get('PANEL') for c in s.HORIZON_CONFIG['panel_customization']]
print(json.dumps({
    'keystone': s.OPENSTACK_KEYSTONE_URL, 'key': s.SECRET_KEY,
    'middleware': s.MIDDLEWARE[0], 'static': s.STATIC_ROOT,
    'apps': s.INSTALLED_APPS, 'panels': panels,
    'quotas': s.OPENSTACK_NEUTRON_NETWORK['enable_quotas']}))
'''


def test_horizon_loads_the_written_settings(cloud):
    """Horizon's own settings module with ours: Keystone, the key from its
    file, WhiteNoise first, trove-dashboard's panels enabled."""
    lay, state = cloud
    dashboard.write_settings(state, lay)
    result = subprocess.run(
        [sys.executable, '-c', SHOW], capture_output=True, text=True,
        env=processes.service_env(dashboard.environment(lay)), cwd=lay.root,
        check=False, timeout=120)
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    paths = dashboard.paths(lay)
    assert shown['keystone'] == configs.identity_url(state)
    assert shown['key'] == paths['secret_key'].read_text()
    assert shown['middleware'] == 'whitenoise.middleware.WhiteNoiseMiddleware'
    assert shown['static'] == str(paths['static'])
    assert 'trove_dashboard' in shown['apps']
    assert {'databases', 'database_backups',
            'database_configurations'} <= set(shown['panels'])
    assert shown['quotas'] is False
