"""Fixtures shared by the integration tests (on top of local_cloud)."""

import pytest

from trovestack import connection


@pytest.fixture(scope='session')
def admin(local_cloud):
    """An openstacksdk connection as the local cloud's admin."""
    return local_cloud.connection(local_cloud.admin_cloud)


@pytest.fixture(scope='session')
def trove(admin):
    """A python-troveclient client sharing the admin connection's session."""
    return connection.trove_client(admin)
