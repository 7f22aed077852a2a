"""trove-dashboard in the devstack plugin: with the ``horizon`` service the
install phase installs it and enables its panels in Horizon (as upstream
trove's plugin does), ``clean`` takes exactly those out again; without
``horizon`` nothing of it happens.  On the fake devstack library, the
installed trove-dashboard standing in for its git checkout."""

import pathlib

import trove_dashboard

from tests.devstack.test_plugin_settings import calls
from tests.devstack.test_plugin_settings import error_lines
from tests.devstack.test_plugin_settings import run_plugin

CHECKOUT = pathlib.Path(trove_dashboard.__file__).parent.parent
SHIPPED = CHECKOUT / 'trove_dashboard' / 'enabled'
PANELS = sorted(path.name for path in SHIPPED.glob('_[0-9]*.py'))
# Another plugin's panel (designate-dashboard's) in the same range.
OTHER = '_1710_project_dns_panel_group.py'
SERVICES = 'key,g-api,n-api,c-api,c-vol'


def _horizon(tmp_path):
    """Horizon's local/enabled under $DEST, with another plugin's file."""
    enabled = (tmp_path / 'opt' / 'horizon' / 'openstack_dashboard'
               / 'local' / 'enabled')
    enabled.mkdir(parents=True)
    (enabled / '__init__.py').touch()
    (enabled / OTHER).write_text('PANEL_GROUP = "dns"\n')
    return enabled


def _settings(tmp_path, services):
    trove = tmp_path / 'opt' / 'trove'
    trove.mkdir(parents=True, exist_ok=True)
    return dict(ENABLED_SERVICES=services, TROVE_DIR=str(trove),
                TROVE_GUEST_AGENT_SOURCE='pip',
                TROVE_DASHBOARD_DIR=str(CHECKOUT),
                TROVE_CONF_DIR=str(tmp_path / 'etc'))


def _panels(enabled):
    return sorted(path.name for path in enabled.glob('_[0-9]*.py'))


def test_install_enables_the_panels_and_clean_removes_them(tmp_path):
    assert '_1720_project_databases_panel.py' in PANELS
    enabled = _horizon(tmp_path)
    settings = _settings(tmp_path, f'{SERVICES},horizon')
    result = run_plugin(tmp_path, 'stack', 'install', **settings)
    assert result.returncode == 0, result.stderr
    assert f'setup_develop {CHECKOUT}' in calls(tmp_path)
    assert _panels(enabled) == sorted([*PANELS, OTHER])
    for name in PANELS:
        assert (enabled / name).read_bytes() == (SHIPPED / name).read_bytes()

    result = run_plugin(tmp_path, 'clean', **settings)
    assert result.returncode == 0, result.stderr
    assert _panels(enabled) == [OTHER]
    assert (enabled / '__init__.py').exists()


def test_without_horizon_the_dashboard_is_left_alone(tmp_path):
    enabled = _horizon(tmp_path)
    settings = _settings(tmp_path, SERVICES)
    for phase in (('stack', 'install'), ('clean',)):
        result = run_plugin(tmp_path, *phase, **settings)
        assert result.returncode == 0, result.stderr
    assert not [call for call in calls(tmp_path) if str(CHECKOUT) in call]
    assert _panels(enabled) == [OTHER]


def test_install_without_horizons_tree_fails_clearly(tmp_path):
    result = run_plugin(tmp_path, 'stack', 'install',
                        **_settings(tmp_path, f'{SERVICES},horizon'))
    assert result.returncode != 0
    [line] = error_lines(result)
    assert 'openstack_dashboard/local/enabled: is Horizon installed?' in line
