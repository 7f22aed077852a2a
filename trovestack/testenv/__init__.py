"""The Trove test environment: flavors, quotas, keys and test configuration.

Each module owns one concern and converges on re-run: it looks at what the
cloud already has, reports what it would change, and changes only that.
"""

import dataclasses
import os

from keystoneauth1 import exceptions as ks_exc

# Actions reported for every resource or option handled.
CREATED = 'created'
UNCHANGED = 'unchanged'
REPLACED = 'replaced'
UPDATED = 'updated'
SKIPPED = 'skipped'


def planned(action):
    """The dry-run spelling of an action: 'created' -> 'would-create'."""
    if action in (UNCHANGED, SKIPPED):
        return action
    return 'would-' + action[:-1] if action.endswith('ed') else action


class TestEnvError(Exception):
    """A problem the user must fix, reported as one line."""

    __test__ = False  # not a pytest test class despite the name


@dataclasses.dataclass(frozen=True)
class Change:
    """One resource or option looked at, and what was (or would be) done."""

    resource: str
    name: str
    action: str
    detail: str = ''

    __test__ = False


def check_directory(path):
    """Raise TestEnvError unless the directory that would hold path exists."""
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise TestEnvError(
            f'cannot write {path}: directory {directory} does not exist')


def has_service(conn, service_type):
    """True when the catalog has an endpoint for ``service_type``.

    Unlike Connection.has_service() it does not log a warning per miss.
    """
    try:
        return bool(conn.session.get_endpoint(
            service_type=service_type,
            interface=conn.config.get_interface(service_type),
            region_name=conn.config.get_region_name(service_type)))
    except ks_exc.EndpointNotFound:
        return False
