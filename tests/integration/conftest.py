"""Fixtures shared by the integration tests (on top of local_cloud)."""

import os
import shutil
import subprocess

import pytest

from tests.conftest import LocalCloudFixture
from tests.integration import dashboard_support
from trovestack.cloud import controlplane
from trovestack.common import connection
from trovestack.common import files
from trovestack.common import netns

# One compute cloud per machine (libvirtd, OVS and the guests' CPU): test
# sessions wait for each other on this lock.
COMPUTE_LOCK = '/tmp/trovestack-compute-cloud.lock'


@pytest.fixture(scope='session')
def admin(local_cloud):
    """An openstacksdk connection as the local cloud's admin."""
    return local_cloud.connection(local_cloud.admin_cloud)


@pytest.fixture(scope='session')
def trove(admin):
    """A python-troveclient client sharing the admin connection's session."""
    return connection.trove_client(admin)


class ComputeCloudFixture(LocalCloudFixture):
    """A local cloud with its compute layer up (``cloud up --compute``)."""

    def __init__(self, cloud, layer, rows, health, host_addresses, logs):
        super().__init__(cloud)
        self.layer = layer
        self.rows = rows
        self.health = health
        # Addresses of the host before the cloud came up: guests' addresses
        # must never appear outside the namespace.
        self.host_addresses = host_addresses
        self.logs = logs

    @property
    def namespace(self):
        return self.layer.paths.namespace

    @property
    def cstate(self):
        return self.layer.state


def host_addresses():
    out = subprocess.run(['ip', '-o', 'addr'], capture_output=True,
                         text=True, check=True).stdout
    return {line.split()[3] for line in out.splitlines()}


def _compute_missing():
    from tests import tiny_guest
    from trovestack.cloud.compute import cloud as compute_cloud

    if os.geteuid() != 0:
        return 'the compute cloud needs root'
    try:
        compute_cloud._check_binaries()
    except Exception as exc:  # noqa: BLE001 - the reason is the skip text
        return str(exc)
    for tool in tiny_guest.TOOLS:
        if shutil.which(tool) is None:
            return f'{tool} missing'
    return None


@pytest.fixture(scope='session')
def compute_cloud(tmp_path_factory, isolated_user_config):
    """One compute cloud per test session (and per machine: an exclusive
    flock on COMPUTE_LOCK while it is up); wiped at the end, its logs kept
    in <tmp>/logs for a failure's story."""
    from trovestack.cloud.compute import cloud as compute_mod

    reason = _compute_missing()
    if reason:
        pytest.skip(reason)
    root = tmp_path_factory.mktemp('compute-cloud')
    local = controlplane.LocalCloud(root / 'state')
    layer = compute_mod.ComputeLayer(local.layout)
    with files.exclusive_lock(COMPUTE_LOCK):  # waits for another session
        before = host_addresses()
        try:
            # With the registry its guests pull backup images from, as
            # "cloud up --compute" runs it.
            rows, health = compute_mod.up_with_control_plane(
                local, base_port=0, clouds_yaml_path=root / 'clouds.yaml',
                registry=True)
            yield ComputeCloudFixture(local, layer, rows, health, before,
                                      root / 'logs')
        finally:
            shutil.copytree(local.layout.root / 'logs', root / 'logs',
                            dirs_exist_ok=True)
            layer.wipe()
            local.wipe()
            assert not netns.exists(layer.paths.namespace)


@pytest.fixture(scope='module')
def shots(tmp_path_factory):
    """Where a dashboard test keeps its browser's screenshots."""
    return dashboard_support.screenshots_dir(tmp_path_factory)


@pytest.fixture
def browser(dashboard_rows, shots, request):
    """A headless Chromium on the dashboard of the module's
    ``dashboard_rows`` (its cloud's status rows)."""
    with dashboard_support.browsing(dashboard_rows, shots,
                                    request.node.name) as session:
        yield session
