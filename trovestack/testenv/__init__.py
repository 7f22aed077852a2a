"""The Trove test environment's parts: flavors, quotas, keys, security-group
rules, tempest.conf and Trove's test configuration, tempest runs.

Each module owns one concern; those that change the cloud converge on
re-run: they look at what the cloud already has, report what they would
change, and change only that.
"""

import os
import pathlib

from trovestack.common import connection
from trovestack.common import results
from trovestack.common.errors import UserError

# Actions reported for every resource or option handled.
CREATED = results.CREATED
UNCHANGED = results.UNCHANGED
REPLACED = 'replaced'
UPDATED = results.UPDATED
SKIPPED = results.SKIPPED
planned = results.planned


class TestEnvError(UserError):
    """A problem the user must fix, reported as one line."""

    __test__ = False  # not a pytest test class despite the name


def check_directory(path: pathlib.Path | str) -> None:
    """Raise TestEnvError unless the directory that would hold path exists."""
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise TestEnvError(
            f'cannot write {path}: directory {directory} does not exist')


def has_service(conn: connection.Connection, service_type: str) -> bool:
    """True when the catalog has an endpoint for ``service_type``.

    Unlike Connection.has_service() it does not log a warning per miss.
    """
    from keystoneauth1 import exceptions as ks_exc

    try:
        return bool(conn.session.get_endpoint(
            service_type=service_type,
            interface=conn.config.get_interface(service_type),
            region_name=conn.config.get_region_name(service_type)))
    except ks_exc.EndpointNotFound:
        return False
