"""The dashboard of the API-only local cloud (``cloud up --dashboard``):
Horizon with trove-dashboard on loopback, in a real browser (Debian's
headless Chromium, Selenium).  The demo and admin users log in and open
Project > Databases > Instances; a wrong password, and Keystone down,
show Horizon's own error on the login form.  Screenshots of every step
are kept in the session's ``dashboard-screenshots-*`` directory (kept by
bin/run-tests on failure).
"""

import ipaddress
import urllib.parse

import pytest

from tests.helpers import run
from tests.helpers import run_json
from tests.integration import dashboard_support
from trovestack.cloud import dashboard
from trovestack.common import connection


@pytest.fixture(scope='module')
def dashboard_rows(local_cloud):
    """The cloud's status rows with the dashboard turned on (off again
    at the module's end)."""
    with dashboard_support.enabled(local_cloud.state_dir,
                                   local_cloud.env()) as rows:
        yield rows


def test_status_shows_the_dashboard_on_loopback(local_cloud, dashboard_rows):
    state_dir = local_cloud.state_dir
    assert {row['Service']: row['State'] for row in dashboard_rows}[
        'dashboard'] == 'running'
    url = dashboard_support.dashboard_url(dashboard_rows)
    assert ipaddress.ip_address(urllib.parse.urlsplit(url).hostname) \
        .is_loopback
    rows = run_json('trovestack', 'cloud', 'status', '--state-dir',
                    state_dir)
    assert dashboard_support.dashboard_url(rows) == url
    env = run('trovestack', 'cloud', 'env', '--state-dir', state_dir).stdout
    assert f'# dashboard: {url} ' in env
    state = local_cloud.cloud.state
    assert state.dashboard
    paths = dashboard.paths(local_cloud.cloud.layout)
    assert paths['secret_key'].stat().st_mode & 0o777 == 0o600
    assert (paths['static'] / dashboard.STAMP).exists()

    # Run again: nothing is collected again, nothing restarted.
    pid = {row['Service']: row['PID'] for row in rows}['dashboard']
    setup_log = local_cloud.cloud.layout.log_file(dashboard.SETUP_STEP)
    collected = setup_log.stat().st_mtime
    again = run_json('trovestack', 'cloud', 'up', '--state-dir', state_dir)
    assert {row['Service']: row['PID'] for row in again}['dashboard'] == pid
    assert setup_log.stat().st_mtime == collected


def test_demo_logs_in_and_opens_database_instances(local_cloud, browser):
    browser.login('demo', local_cloud.cloud.state.demo_password)
    assert '/auth/login' not in browser.driver.current_url, browser.text()
    assert not browser.server_error(), browser.text()
    browser.open_in_sidebar('Databases', 'Instances')
    assert browser.driver.current_url.endswith('/project/databases/')
    assert not browser.server_error(), browser.text()
    demo = connection.trove_client(
        local_cloud.connection(local_cloud.demo_cloud))
    listed = {instance.name for instance in demo.instances.list()}
    assert set(browser.table_rows('databases')) == listed
    if not listed:
        assert 'No items to display.' in browser.text()


def test_admin_sees_the_database_panel(local_cloud, browser):
    browser.login('admin', local_cloud.cloud.state.admin_password)
    assert '/auth/login' not in browser.driver.current_url, browser.text()
    browser.open_in_sidebar('Databases', 'Instances')
    assert browser.page_title() == 'Instances'
    assert not browser.server_error(), browser.text()
    assert browser.element('table#databases')


def test_wrong_password_shows_horizons_login_error(local_cloud, browser):
    browser.login('demo', 'not-' + local_cloud.cloud.state.demo_password)
    assert '/auth/login' in browser.driver.current_url
    alert = browser.element('.alert-danger')
    assert alert.text.strip() == 'Invalid credentials.'
    assert not browser.server_error(), browser.text()


def test_login_without_keystone_shows_horizons_message(local_cloud,
                                                       browser):
    """Keystone stopped: the login form says so, no stack trace."""
    cloud = local_cloud.cloud
    cloud.supervisor.stop('keystone')
    try:
        browser.login('demo', cloud.state.demo_password)
        assert '/auth/login' in browser.driver.current_url
        alert = browser.element('.alert-danger')
        assert 'Unable to establish connection to keystone' in alert.text
        assert not browser.server_error(), browser.text()
    finally:
        cloud.restart(['keystone'])


def test_logins_leave_no_password_in_the_dashboards_files(local_cloud,
                                                          dashboard_rows):
    layout = local_cloud.cloud.layout
    state = local_cloud.cloud.state
    texts = [layout.log_file(dashboard.NAME).read_text(errors='replace'),
             layout.log_file(dashboard.SETUP_STEP).read_text(
                 errors='replace'),
             dashboard.paths(layout)['settings'].read_text()]
    for secret in (state.admin_password, state.demo_password,
                   state.service_password):
        assert not [text for text in texts if secret in text]
