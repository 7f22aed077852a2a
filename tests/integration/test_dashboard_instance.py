"""The dashboard with a Trove instance (the compute cloud): in a real
browser the admin opens the ACTIVE MariaDB instance from Project >
Databases > Instances, sees its status, creates a database in its
Databases tab and finds it listed there (and through Trove's API).

Root only, minutes (a guest under TCG): a further Trove instance, so in
the guest lane only with TROVESTACK_EXTRA_INSTANCES=1 (CI's one instance is
the gate scenario's).  Alone: ``TROVESTACK_EXTRA_INSTANCES=1 bin/run-tests
tests/integration/test_dashboard_instance.py``, or ``.venv/bin/pytest
tests/integration/test_dashboard_instance.py``.  Screenshots of every
step are kept in the session's ``dashboard-screenshots-*`` directory.
"""

import pytest

from tests.helpers import run
from tests.integration import dashboard_support
from tests.integration import guest_images
from trovestack.common import connection
from trovestack.common import waiting
from trovestack.trove import instances

pytestmark = [pytest.mark.compute, pytest.mark.extra_instance]
DATASTORE, VERSION = 'mariadb', '11.8'
FLAVOR = 'd3'        # as tests/integration/test_compute.py
VOLUME_SIZE = 1
INSTANCE = 'dashboard-ui'
DATABASE = 'made_in_the_dashboard'
LISTED_TIMEOUT = 300  # s for the guest agent to make the database


@pytest.fixture(scope='module')
def dashboard_rows(compute_cloud):
    """``cloud up --dashboard`` on the compute cloud (``--no-dashboard``
    again at the module's end); its status rows."""
    with dashboard_support.enabled(compute_cloud.state_dir,
                                   compute_cloud.env()) as rows:
        yield rows


@pytest.fixture(scope='module')
def ui_instance(compute_cloud, tmp_path_factory):
    """The ACTIVE MariaDB instance the dashboard shows, in the admin
    project: ``trovestack provision`` first (nothing to change when
    test_compute.py provisioned the cloud already).  Deleted at the
    module's end."""
    work = tmp_path_factory.mktemp('dashboard-provision')
    run('trovestack', 'provision', f'{DATASTORE}:{VERSION}', '--image',
        guest_images.compute_image(tmp_path_factory)[0], '--state-dir',
        compute_cloud.state_dir, '--tempest-conf', work / 'tempest.conf',
        env=compute_cloud.env(), timeout=1800)
    conn = compute_cloud.connection()
    yield instances.ensure_instance(
        conn, INSTANCE, datastore=DATASTORE, version=VERSION, flavor=FLAVOR,
        volume_size=VOLUME_SIZE)
    instances.delete_instance(conn, INSTANCE)


def test_instance_shows_its_status_and_takes_a_database_from_the_ui(
        compute_cloud, ui_instance, browser):
    admin = compute_cloud.connection()
    trove = connection.trove_client(admin)
    browser.login('admin', compute_cloud.state.admin_password)
    # Horizon may open another of admin's projects first (demo).
    browser.switch_project('admin', admin.current_project_id)
    browser.open_in_sidebar('Databases', 'Instances')
    rows = browser.table_rows('databases')
    assert INSTANCE in rows, rows
    assert 'Active' in rows[INSTANCE], rows[INSTANCE]

    browser.click(browser.element(
        f'table#databases a[href*="/{ui_instance.id}/"]'))
    browser.wait(lambda driver: browser.page_title() == INSTANCE)
    browser.shot('instance')
    assert browser.detail('ID') == ui_instance.id
    assert browser.detail('Status') == 'Active'
    assert browser.detail('Datastore') == DATASTORE
    assert not browser.server_error(), browser.text()

    browser.open_tab('Databases')
    browser.click(browser.element('#databases__action_create_database'))
    browser.element('#create_database_form #id_name').send_keys(DATABASE)
    browser.shot('create-database')
    browser.click(browser.element('#create_database_form [type=submit]'))
    success = browser.element('.alert-success')
    assert DATABASE in success.text, success.text
    browser.shot('database-created')

    # The guest agent makes the database after the API answered: the tab
    # is opened again until it lists it.
    detail_url = browser.driver.current_url.split('?')[0]

    def listed():
        browser.driver.get(
            f'{detail_url}?tab=instance_details__database_tab')
        return DATABASE in browser.table_rows('databases')

    waiting.wait_for(f'database {DATABASE} listed in the dashboard', listed,
                     LISTED_TIMEOUT, interval=10)
    browser.shot('database-listed')
    assert not browser.server_error(), browser.text()
    assert DATABASE in {db.name for db in trove.databases.list(
        ui_instance.id)}
