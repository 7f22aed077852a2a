"""Quotas Trove testing needs, raised to a minimum and never lowered.

Trove boots guests, volumes and security groups in its service project, so
the compute, volume and network minimums apply there; Trove's own quotas
apply to the project the tests run in. A service that is not in the
catalog, or whose quota API is missing or broken (the local control plane's
nova-api has no cells), is skipped with the reason.
"""

import dataclasses
import logging
from collections.abc import Iterable
from collections.abc import Mapping
from typing import Any

from trovestack import testenv
from trovestack.common import connection
from trovestack.common.results import Row

LOG = logging.getLogger(__name__)

UNLIMITED = -1
SERVICE_PROJECT = 'service'
TEST_PROJECT = 'demo'

# (service type, resource, minimum, which project). The service-project
# numbers are the ones upstream's devstack plugin sets; the Trove ones are
# the per-tenant limits the redstack-era test config expected.
QUOTA_TABLE = (
    ('compute', 'cores', 60, 'service'),
    ('compute', 'instances', 30, 'service'),
    ('compute', 'ram', 51200, 'service'),
    ('block-storage', 'volumes', 30, 'service'),
    ('block-storage', 'snapshots', 30, 'service'),
    ('block-storage', 'backups', 30, 'service'),
    ('network', 'security_groups', 50, 'service'),
    ('network', 'security_group_rules', 300, 'service'),
    ('database', 'instances', 55, 'test'),
    ('database', 'volumes', 100, 'test'),
    ('database', 'backups', 50, 'test'),
)
SERVICES = tuple(dict.fromkeys(row[0] for row in QUOTA_TABLE))


@dataclasses.dataclass(frozen=True)
class QuotaWant:
    service: str
    resource: str
    minimum: int
    project: str  # 'service' or 'test'


def wanted(
        overrides: Mapping[tuple[str, str], int] | None = None,
) -> list[QuotaWant]:
    """QUOTA_TABLE as QuotaWants, with {(service, resource): minimum}."""
    overrides = dict(overrides or {})
    known = {(row[0], row[1]) for row in QUOTA_TABLE}
    unknown = sorted(f'{s}.{r}' for s, r in overrides if (s, r) not in known)
    if unknown:
        raise testenv.TestEnvError(
            f'unknown quota {", ".join(unknown)} (known: '
            f'{", ".join(f"{s}.{r}" for s, r, _, _ in QUOTA_TABLE)})')
    return [QuotaWant(service, resource,
                      overrides.get((service, resource), minimum), project)
            for service, resource, minimum, project in QUOTA_TABLE]


def parse_quota_arg(value: str) -> tuple[tuple[str, str], int]:
    """'SERVICE.RESOURCE=N' -> ((service, resource), N)."""
    key, sep, number = value.partition('=')
    service, dot, resource = key.partition('.')
    if not (sep and dot and service and resource):
        raise ValueError(f'{value!r} is not SERVICE.RESOURCE=N')
    try:
        minimum = int(number)
    except ValueError:
        raise ValueError(f'{value!r}: {number!r} is not an integer') from None
    if minimum < UNLIMITED:
        raise ValueError(f'{value!r}: use -1 for unlimited')
    return (service, resource), minimum


def is_enough(current: int, minimum: int) -> bool:
    if current == UNLIMITED:
        return True
    if minimum == UNLIMITED:
        return False
    return current >= minimum


class _QuotaApi:
    """Read and raise the quotas of one service for one project."""

    def __init__(self, conn: connection.Connection, trove: Any) -> None:
        self.conn = conn
        self.trove = trove

    def get(self, service: str, project_id: str) -> dict[str, int]:
        if service == 'database':
            return {q.resource: int(q.limit)
                    for q in self.trove.quota.show(project_id)}
        if service == 'compute':
            quota = self.conn.compute.get_quota_set(project_id)
        elif service == 'block-storage':
            quota = self.conn.block_storage.get_quota_set(project_id)
        else:
            quota = self.conn.network.get_quota(project_id)
        return {key: value for key, value in quota.to_dict().items()
                if isinstance(value, int)}

    def set(self, service: str, project_id: str,
            limits: dict[str, int]) -> None:
        if service == 'database':
            self.trove.quota.update(project_id, limits)
        elif service == 'compute':
            self.conn.compute.update_quota_set(project_id, **limits)
        elif service == 'block-storage':
            self.conn.block_storage.update_quota_set(project_id, **limits)
        else:
            self.conn.network.update_quota(project_id, **limits)


def _status(exc: BaseException) -> int | None:
    # openstacksdk: status_code, keystoneauth: http_status, troveclient: code
    for attribute in ('status_code', 'http_status', 'code'):
        status = getattr(exc, attribute, None)
        if isinstance(status, int):
            return status
    return None


def _is_broken(exc: BaseException) -> bool:
    """An API that is missing or failing on the server, not our fault."""
    status = _status(exc)
    return isinstance(status, int) and (status == 404 or status >= 500)


def project_id(conn: connection.Connection, name: str) -> str:
    """The id of project ``name``; TestEnvError when there is none."""
    project = conn.identity.find_project(name, ignore_missing=True)
    if project is None:
        raise testenv.TestEnvError(f'project {name!r} does not exist')
    return project.id


def ensure_quotas(conn: connection.Connection, trove: Any,
                  wants: Iterable[QuotaWant], *,
                  service_project: str = SERVICE_PROJECT,
                  test_project: str = TEST_PROJECT,
                  dry_run: bool = False) -> list[Row]:
    """Raise quotas below their minimum; [Row] per quota or skip.

    Both projects are looked up before any quota changes.
    """
    present = [s for s in SERVICES if any(w.service == s for w in wants)
               and testenv.has_service(conn, s)]
    names = {'service': service_project, 'test': test_project}
    roles = {w.project for w in wants if w.service in present}
    projects = {role: (names[role], project_id(conn, names[role]))
                for role in sorted(roles)}
    api = _QuotaApi(conn, trove)
    changes = []
    for service in SERVICES:
        group = [w for w in wants if w.service == service]
        if not group:
            continue
        if service not in present:
            changes.append(Row(
                'quota', service, testenv.SKIPPED,
                f'no {service} endpoint in the catalog'))
            continue
        try:
            changes.extend(_ensure_service(
                api, service, projects[group[0].project], group,
                dry_run=dry_run))
        except Exception as exc:  # noqa: BLE001 - sdk, ksa and troveclient
            if not _is_broken(exc):
                raise
            LOG.debug('%s quota API failed', service, exc_info=True)
            first_line = (str(exc).strip().splitlines() or [''])[0]
            changes.append(Row(
                'quota', service, testenv.SKIPPED,
                f'{service} quota API unavailable: {first_line[:120]}'))
    return changes


def _ensure_service(api: _QuotaApi, service: str, project: tuple[str, str],
                    group: Iterable[QuotaWant], *, dry_run: bool) -> list[Row]:
    project_name, project_id = project
    current = api.get(service, project_id)
    raise_to = {w.resource: w.minimum for w in group
                if not is_enough(current.get(w.resource, 0), w.minimum)}
    if raise_to and not dry_run:
        LOG.info('Raising %s quotas of project %s: %s', service,
                 project_name, raise_to)
        api.set(service, project_id, raise_to)
    changes = []
    for want in group:
        name = f'{service}.{want.resource}@{project_name}'
        have = current.get(want.resource)
        if want.resource in raise_to:
            action = 'would-raise' if dry_run else 'raised'
            changes.append(Row('quota', name, action,
                               f'{have} -> {want.minimum}'))
        else:
            changes.append(Row(
                'quota', name, testenv.UNCHANGED,
                f'{have} (minimum {want.minimum})'))
    return changes
