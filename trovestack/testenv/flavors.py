"""Nova flavors that Trove's tests expect, created once and kept as defined.

Two families, both with fixed ids because tests refer to them by id or name:

* ``tempest``: devstack's ``ds*`` flavors (ids ``d1``..``d4``);
  trove-tempest-plugin's ``[database] flavor_id``/``resize_flavor_id``
  default to ``d3``/``d4``.
* ``redstack``: the ``test.<size>-<disk>`` flavors of the old trovestack
  ``test-init``. Each base row also gives an ephemeral variant
  (``test.eph.*``, id suffix ``e``, 1 GB ephemeral disk) and, unless the row
  is a fault flavor, a ``.resize`` variant of each (id suffix ``r``,
  16 MB more RAM and one more vCPU).

A flavor that exists with the same spec is left alone. One whose id or
name is taken with a different spec is a conflict: every conflict is found
before anything is created, and nothing changes unless ``replace`` is given
(then the old flavor is deleted and recreated).
"""

import dataclasses
import logging
import types
from collections.abc import Iterable
from collections.abc import Iterator
from typing import Any

from trovestack import testenv
from trovestack.common import connection
from trovestack.common.results import Row

LOG = logging.getLogger(__name__)

FLAVOR_SETS = ('tempest', 'redstack', 'all')
DEFAULT_FLAVOR_SET = 'all'

# devstack's flavors carry this extra spec; keeping it makes ours identical.
_RNG_ALLOWED = (('hw_rng:allowed', 'True'),)

# The one table: (family, name, id, ram MB, disk GB, vcpus, resizable).
# devstack flavors are used as they are; redstack rows are expanded by
# _expand_redstack() into plain/ephemeral and .resize variants.
FLAVOR_TABLE = (
    ('tempest', 'ds512M', 'd1', 512, 5, 1, False),
    ('tempest', 'ds1G', 'd2', 1024, 10, 1, False),
    ('tempest', 'ds2G', 'd3', 2048, 10, 2, False),
    ('tempest', 'ds4G', 'd4', 4096, 20, 4, False),
    ('redstack', 'tiny', '10', 768, 4, 1, True),
    ('redstack', 'small', '15', 1024, 6, 1, True),
    ('redstack', 'small', '16', 1024, 7, 1, True),
    ('redstack', 'small', '17', 1024, 8, 1, True),
    ('redstack', 'medium', '20', 1536, 7, 1, True),
    ('redstack', 'medium', '21', 1536, 8, 1, True),
    ('redstack', 'large', '25', 2048, 8, 1, True),
    ('redstack', 'large', '26', 2048, 13, 1, True),
    ('redstack', 'large', '27', 2048, 18, 1, True),
    # Boots, but the root disk is too small for the image.
    ('redstack', 'fault_1', '30', 1536, 1, 1, False),
    # More memory than any test host has: Nova fails to schedule it.
    ('redstack', 'fault_2', '31', 131072, 7, 1, False),
)

RESIZE_EXTRA_RAM_MB = 16
RESIZE_EXTRA_VCPUS = 1


@dataclasses.dataclass(frozen=True)
class FlavorSpec:
    """What a flavor must look like; ``extra_specs`` is a sorted tuple."""

    name: str
    id: str
    ram: int
    disk: int
    vcpus: int
    ephemeral: int = 0
    extra_specs: tuple = ()

    def differences(self, flavor: Any) -> list[str]:
        """'field ours!=theirs' strings for every way ``flavor`` differs."""
        found = []
        for field in ('id', 'name', 'ram', 'disk', 'vcpus', 'ephemeral'):
            theirs = getattr(flavor, field)
            if str(theirs) != str(getattr(self, field)):
                found.append(f'{field} {theirs}!={getattr(self, field)}')
        theirs = dict(flavor.extra_specs or {})
        for key, value in self.extra_specs:
            if theirs.get(key) != value:
                found.append(f'{key} {theirs.get(key)}!={value}')
        return found


@dataclasses.dataclass(frozen=True)
class FlavorResult:
    """A flavor spec and what ensure_flavors() did (or would do) with it."""

    spec: FlavorSpec
    action: str

    def to_row(self) -> Row:
        spec = self.spec
        return Row(
            'flavor', spec.name, self.action,
            f'id={spec.id} ram={spec.ram} disk={spec.disk} '
            f'vcpus={spec.vcpus} ephemeral={spec.ephemeral}')


def _expand_redstack(name: str, flavor_id: str, ram: int, disk: int,
                     vcpus: int, resizable: bool) -> Iterator[FlavorSpec]:
    for prefix, suffix, ephemeral in (('test', '', 0), ('test.eph', 'e', 1)):
        base = FlavorSpec(f'{prefix}.{name}-{disk}', flavor_id + suffix,
                          ram, disk, vcpus, ephemeral)
        yield base
        if resizable:
            yield dataclasses.replace(
                base, name=base.name + '.resize', id=base.id + 'r',
                ram=ram + RESIZE_EXTRA_RAM_MB,
                vcpus=vcpus + RESIZE_EXTRA_VCPUS)


def flavor_specs(flavor_set: str = DEFAULT_FLAVOR_SET) -> list[FlavorSpec]:
    """The FlavorSpecs of one of FLAVOR_SETS, in table order."""
    if flavor_set not in FLAVOR_SETS:
        raise testenv.TestEnvError(
            f'unknown flavor set {flavor_set!r} '
            f'(choose from {", ".join(FLAVOR_SETS)})')
    specs = []
    for family, name, flavor_id, ram, disk, vcpus, resizable in FLAVOR_TABLE:
        if flavor_set not in ('all', family):
            continue
        if family == 'tempest':
            specs.append(FlavorSpec(name, flavor_id, ram, disk, vcpus,
                                    extra_specs=_RNG_ALLOWED))
        else:
            specs.extend(_expand_redstack(name, flavor_id, ram, disk, vcpus,
                                          resizable))
    return specs


@dataclasses.dataclass
class Inventory:
    """The flavors a cloud has (public and private, with extra specs)."""

    by_id: dict
    by_name: dict

    def matching(self, spec: FlavorSpec) -> list[Any]:
        """The existing flavors with the spec's id, then its name."""
        found = [self.by_id.get(spec.id), self.by_name.get(spec.name)]
        return list({f.id: f for f in found if f is not None}.values())


def inventory(conn: connection.Connection) -> 'Inventory':
    """The cloud's flavors with their specs, looked up once."""
    found = existing(conn, details=True)
    return Inventory(by_id={flavor.id: flavor for flavor in found},
                     by_name={flavor.name: flavor for flavor in found})


def existing(conn: connection.Connection, *, details: bool) -> list[Any]:
    """Every flavor (public and private): with ``details``, each with the
    attributes compared here (extra specs included), else id and name.

    Plain REST list pages over ``conn``'s session when it can (listed());
    else openstacksdk, which below compute API 2.61 fetches extra specs
    one flavor at a time (from 2.61 the list carries them).
    """
    found = listed(conn, details=details)
    if found is not None:
        return found
    if not details:
        return list(conn.compute.flavors(details=False, is_public=None))
    from openstack import utils

    with_specs = utils.supports_microversion(conn.compute,
                                             _LIST_MICROVERSION)
    return list(conn.compute.flavors(
        details=True, is_public=None, get_extra_specs=not with_specs))


# Compute API 2.61: a flavor list carries the flavors' extra specs.
_LIST_MICROVERSION = '2.61'


def listed(conn: connection.Connection, *, details: bool) -> list[Any] | None:
    """Every flavor (public and private) in one plain REST list per page
    over ``conn``'s session, as records with the attributes compared here
    (id, name, ram, disk, vcpus, ephemeral, extra_specs); None when that
    is not possible (not a trovestack Connection, or a compute API older
    than 2.61): then existing() lists them through openstacksdk.
    """
    if not isinstance(conn, connection.Connection):
        return None
    compute = conn.rest_api('compute')
    url: str | None = '/flavors/detail' if details else '/flavors'
    # all flavors, as openstacksdk asks
    params: dict[str, str] | None = {'is_public': 'None'}
    found: list[Any] = []
    while url:
        response = compute.get(url, params=params,
                               microversion=_LIST_MICROVERSION,
                               headers={'Accept': 'application/json'})
        if response.status_code != 200:
            LOG.debug('Flavor list answered %s; listing through '
                      'openstacksdk', response.status_code)
            return None
        body = response.json()
        found.extend(_flavor_record(item) for item in body['flavors'])
        url = next((link['href'] for link in body.get('flavors_links', ())
                    if link.get('rel') == 'next'), None)
        params = None  # the next link carries the query
    return found


def _flavor_record(item: dict[str, Any]) -> types.SimpleNamespace:
    return types.SimpleNamespace(
        id=item['id'], name=item['name'], ram=item.get('ram'),
        disk=item.get('disk'), vcpus=item.get('vcpus'),
        ephemeral=item.get('OS-FLV-EXT-DATA:ephemeral', 0),
        extra_specs=item.get('extra_specs') or {})


def plan_flavors(
        conn: connection.Connection, specs: Iterable[FlavorSpec], *,
        replace: bool = False) -> list[tuple[FlavorSpec, str, list[Any]]]:
    """[(spec, action, [flavors to delete first])] without changing anything.

    Raises TestEnvError naming every conflict when ``replace`` is false.
    """
    existing = inventory(conn)
    plan: list[tuple[FlavorSpec, str, list[Any]]] = []
    conflicts: list[str] = []
    for spec in specs:
        clashing = existing.matching(spec)
        if not clashing:
            plan.append((spec, testenv.CREATED, []))
            continue
        differences = [d for flavor in clashing
                       for d in spec.differences(flavor)]
        if not differences:
            plan.append((spec, testenv.UNCHANGED, []))
            continue
        conflicts.append(f'{spec.name} (id {spec.id}): '
                         + ', '.join(differences))
        plan.append((spec, testenv.REPLACED, clashing))
    if conflicts and not replace:
        raise testenv.TestEnvError(
            f'{len(conflicts)} flavor(s) exist with a different spec, '
            f'nothing changed (use --replace to recreate them): '
            + '; '.join(conflicts))
    return plan


def ensure_flavors(conn: connection.Connection, specs: Iterable[FlavorSpec], *,
                   replace: bool = False,
                   dry_run: bool = False) -> list[FlavorResult]:
    """Create missing flavors; returns a FlavorResult per spec."""
    plan = plan_flavors(conn, specs, replace=replace)
    results = []
    for spec, action, to_delete in plan:
        if dry_run:
            results.append(FlavorResult(spec, testenv.planned(action)))
            continue
        for flavor in to_delete:
            LOG.info('Deleting flavor %s (id %s) to recreate it',
                     flavor.name, flavor.id)
            conn.compute.delete_flavor(flavor.id, ignore_missing=True)
        if action != testenv.UNCHANGED:
            _create_flavor(conn, spec)
        results.append(FlavorResult(spec, action))
    return results


def _create_flavor(conn: connection.Connection, spec: FlavorSpec) -> None:
    LOG.info('Creating flavor %s (id %s)', spec.name, spec.id)
    flavor = conn.compute.create_flavor(
        name=spec.name, id=spec.id, ram=spec.ram, disk=spec.disk,
        vcpus=spec.vcpus, ephemeral=spec.ephemeral, is_public=True)
    if not spec.extra_specs:
        return
    from openstack import exceptions as sdk_exc

    try:
        conn.compute.create_flavor_extra_specs(flavor, dict(spec.extra_specs))
    except sdk_exc.SDKException:
        LOG.debug('Extra specs of flavor %s failed; removing it', spec.name,
                  exc_info=True)
        conn.compute.delete_flavor(flavor, ignore_missing=True)
        raise
