"""A real browser on the local cloud's dashboard: Debian's headless
Chromium driven by Selenium, a screenshot kept at every step.

Shared by tests/integration/test_dashboard.py (the API-only cloud) and
tests/integration/test_dashboard_instance.py (an instance on the compute
cloud).
"""

import contextlib
import re
import shutil

import pytest

from tests.helpers import run
from tests.helpers import run_json

WAIT = 90  # s a page of Horizon may take on a busy 2-core host
TITLE = ' - OpenStack Dashboard'


@contextlib.contextmanager
def enabled(state_dir, env):
    """``cloud up --dashboard`` on the cloud of state_dir (its status rows),
    and ``--no-dashboard`` again afterwards."""
    rows = run_json('trovestack', 'cloud', 'up', '--state-dir', state_dir,
                    '--dashboard', env=env)
    try:
        yield rows
    finally:
        run('trovestack', 'cloud', 'up', '--state-dir', state_dir,
            '--no-dashboard', env=env)


def screenshots_dir(tmp_path_factory):
    """Where a module's screenshots go: the session's base temporary
    directory, which bin/run-tests keeps when a test failed."""
    path = tmp_path_factory.mktemp('dashboard-screenshots')
    print(f'dashboard screenshots: {path}')
    return path


@contextlib.contextmanager
def browsing(rows, shots, name):
    """A Browser on the dashboard of ``rows`` (``cloud up`` rows) for the
    test ``name``; its last page is kept as a screenshot."""
    browser = start_chromium(dashboard_url(rows), shots, name)
    try:
        yield browser
    finally:
        browser.shot('end')
        browser.driver.quit()


def dashboard_url(rows):
    """The dashboard's URL in ``cloud up``/``status`` rows."""
    row, = [row for row in rows if row['Service'] == 'dashboard']
    return row['URL']


class Browser:
    """One headless Chromium session on the dashboard at ``url``; its
    screenshots go to ``shots`` as ``<prefix>-<n>-<what>.png``."""

    def __init__(self, driver, url, shots, prefix):
        self.driver, self.url = driver, url
        self.shots, self.prefix, self.count = shots, prefix, 0

    def shot(self, what):
        self.count += 1
        path = self.shots / f'{self.prefix}-{self.count:02d}-{what}.png'
        self.driver.save_screenshot(str(path))
        return path

    def wait(self, condition, timeout=WAIT):
        from selenium.webdriver.support.ui import WebDriverWait

        return WebDriverWait(self.driver, timeout).until(condition)

    def click(self, element):
        """Click ``element`` once nothing covers it: Horizon's sidebar and
        modals animate, and a click during that lands on whatever is
        on top ("element click intercepted"), so it is tried again until
        it goes through."""
        from selenium.common import exceptions

        def clicked(driver):
            try:
                element.click()
            except exceptions.ElementClickInterceptedException:
                return False
            return True

        self.wait(clicked)

    def find(self, css):
        from selenium.webdriver.common.by import By

        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def element(self, css):
        """The visible element matching css, once there is one."""
        return self.wait(lambda driver: next(
            (e for e in self.find(css) if e.is_displayed()), False))

    def login(self, user, password):
        """Fill Horizon's login form and send it; waits until a page other
        than the form, or the form with an error, is shown."""
        self.driver.get(self.url + 'auth/login/')
        self.element('#id_username').send_keys(user)
        self.element('#id_password').send_keys(password)
        self.shot(f'login-{user}')
        self.click(self.element('#loginBtn'))
        self.wait(lambda driver: '/auth/login' not in driver.current_url
                  or self.find('.alert-danger'))
        self.shot(f'logged-in-{user}')

    def switch_project(self, name, project_id):
        """Pick another project of the user in the header's project
        menu; waits until the header names it."""
        toggle, = [link for link in self.find('a.dropdown-toggle')
                   if link.find_elements('css selector', '.context-project')]
        self.click(toggle)
        self.click(self.element(f'a[href^="/auth/switch/{project_id}/"]'))
        self.wait(lambda driver: [e.text for e in self.find(
            '.context-project')] == [name])
        self.shot(f'project-{name}')

    def page_title(self):
        return self.driver.title.removesuffix(TITLE)

    def text(self):
        return self.element('body').text

    def open_in_sidebar(self, group, panel, dashboard='project'):
        """Click the sidebar's ``group`` (e.g. Databases) of ``dashboard``,
        then its ``panel`` link (e.g. Instances); waits for that page."""
        accordion = f'#sidebar-accordion-{dashboard}'
        header, = [link for link in self.find(f'{accordion} a[data-toggle]')
                   if link.text.strip() == group]
        target = header.get_attribute('data-target')
        if 'collapsed' in (header.get_attribute('class') or ''):
            self.click(header)
        link = self.wait(lambda driver: next(
            (e for e in self.find(f'{target} a.openstack-panel')
             if e.is_displayed() and e.text.strip() == panel), False))
        self.click(link)
        self.wait(lambda driver: driver.title.startswith(f'{panel}{TITLE}'))
        self.shot(f'{group}-{panel}'.lower().replace(' ', '-'))

    def open_tab(self, name):
        """Click a detail page's tab; waits until its pane shows a table
        (tabs load their tables when first opened)."""
        tab, = [link for link in self.find('ul.nav-tabs a[data-toggle]')
                if link.text.strip() == name]
        self.click(tab)
        target = tab.get_attribute('data-target')
        self.element(f'{target}.active table')
        self.shot(f'tab-{name}'.lower().replace(' ', '-'))

    def detail(self, label):
        """The value a detail page's overview shows for ``label``."""
        from selenium.webdriver.common.by import By

        term, = [term for term in self.find('dl dt')
                 if term.is_displayed() and term.text.strip() == label]
        return term.find_element(By.XPATH,
                                 'following-sibling::dd[1]').text.strip()

    def table_rows(self, table):
        """{name: [cell texts]} of a Horizon table (``table`` its name),
        the name being its first cell with text; {} when it shows no
        items."""
        from selenium.webdriver.common.by import By

        rows = {}
        for row in self.find(f'table#{table} tbody tr:not(.empty)'):
            cells = [cell.text.strip()
                     for cell in row.find_elements(By.TAG_NAME, 'td')]
            texts = [cell for cell in cells if cell]
            if texts:
                rows[texts[0]] = cells
        return rows

    def server_error(self):
        """Why the page is not Horizon's own, or '' (a stack trace or
        Django's error page never reaches users)."""
        source = self.driver.page_source
        for sign in ('Traceback (most recent call last)', 'Server error',
                     'Server Error (500)'):
            if sign in source:
                return sign
        return ''


def chromium_missing():
    """Why Debian's Chromium and its driver cannot be used, or None."""
    for tool, package in (('chromium', 'chromium'),
                          ('chromedriver', 'chromium-driver')):
        if shutil.which(tool) is None:
            return (f'{tool} is not installed (Debian package {package}, '
                    f'tools/install-test-deps)')
    return None


def start_chromium(url, shots, prefix):
    """A Browser on Debian's headless Chromium, or a skip saying why
    Chromium cannot run here."""
    from selenium import webdriver
    from selenium.common import exceptions
    from selenium.webdriver.chrome.service import Service

    missing = chromium_missing()
    if missing:
        pytest.skip(missing)
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which('chromium')
    # Root has no user namespace sandbox; /dev/shm may be small.
    for argument in ('--headless=new', '--no-sandbox',
                     '--disable-dev-shm-usage', '--window-size=1280,900'):
        options.add_argument(argument)
    try:
        driver = webdriver.Chrome(
            service=Service(shutil.which('chromedriver')), options=options)
    except exceptions.WebDriverException as exc:
        first = re.split(r'\n', str(exc.msg or exc).strip())[0]
        pytest.skip(f'Chromium cannot run here: {first}')
    driver.set_page_load_timeout(WAIT)
    return Browser(driver, url, shots, prefix)
