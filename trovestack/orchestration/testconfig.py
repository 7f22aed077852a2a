"""The test configuration files and the whole test environment, as steps.

:func:`write_test_config` merges tempest.conf and writes Trove's JSON test
config; :func:`init_test_environment` adds flavors, quotas, keypair and
Trove's management security group in front of it.  Both check everything
that can refuse before they change anything, and return
:class:`~trovestack.common.results.Row` objects.
"""

import dataclasses
import logging

from trovestack import testenv
from trovestack.common import connection
from trovestack.common.results import Row
from trovestack.testenv import datastores
from trovestack.testenv import flavors
from trovestack.testenv import keypair
from trovestack.testenv import quotas
from trovestack.testenv import secgroup
from trovestack.testenv import tempest_conf as tempest
from trovestack.testenv import trove_test_conf
from trovestack.trove import instance_prereqs

LOG = logging.getLogger(__name__)


@dataclasses.dataclass
class TestConfigRequest:
    """Where the test config goes and what it says."""

    tempest_conf: str | None = None
    trove_test_conf: str | None = None
    # [(name, version or None)]; None: every one
    datastores: list | None = None
    flavor_id: str = tempest.DEFAULT_FLAVOR_ID
    resize_flavor_id: str = tempest.DEFAULT_RESIZE_FLAVOR_ID
    shared_network: str | None = None
    volume_type: str | None = None
    test_clouds: tuple = ()  # clouds.yaml names of further test users
    # Also [auth]/[identity]/[service_available] for this cloud, with its
    # (admin) account for tempest's dynamic credentials.
    with_credentials: bool = False
    region_name: str | None = None
    api_timeout: float = connection.DEFAULT_API_TIMEOUT

    __test__ = False

    @property
    def wanted(self):
        return bool(self.tempest_conf or self.trove_test_conf)


@dataclasses.dataclass
class EnvironmentRequest:
    """What test-init ensures besides the test config."""

    flavor_set: str = flavors.DEFAULT_FLAVOR_SET
    replace: bool = False
    quota_overrides: dict = dataclasses.field(default_factory=dict)
    service_project: str = quotas.SERVICE_PROJECT
    test_project: str = quotas.TEST_PROJECT
    public_key: str | None = None
    keypair_name: str = keypair.DEFAULT_KEYPAIR_NAME
    security_group: str = secgroup.DEFAULT_GROUP_NAME


class _TestConfig:
    """A validated TestConfigRequest, ready to write."""

    def __init__(self, conn, request, *, flavor_ids, flavor_names):
        self.request = request
        if not request.wanted:
            return
        for path in (request.tempest_conf, request.trove_test_conf):
            if path:
                testenv.check_directory(path)
        self.choices = datastores.choose(_datastore_reader(conn),
                                         request.datastores)
        self.settings = tempest.derive_settings(
            conn, self.choices, flavor_id=request.flavor_id,
            resize_flavor_id=request.resize_flavor_id,
            flavor_ids=flavor_ids, shared_network=request.shared_network,
            volume_type=request.volume_type)
        if request.with_credentials and request.tempest_conf:
            self.settings = tempest.cloud_settings(conn) + self.settings
        self.trove_values = None
        if request.trove_test_conf:
            user_conns = [connection.connect(
                cloud=name, region_name=request.region_name,
                api_timeout=request.api_timeout)
                for name in request.test_clouds]
            self.trove_values = trove_test_conf.build(
                conn, self.choices[0], user_conns=user_conns,
                flavor_names=flavor_names)

    def apply(self, *, dry_run):
        request = self.request
        if not request.wanted:
            return [Row('test-config', '-', testenv.SKIPPED,
                        'no --tempest-conf/--trove-test-conf')]
        rows = []
        if request.tempest_conf:
            rows.extend(tempest.merge(
                request.tempest_conf, self.settings, dry_run=dry_run))
        if self.trove_values is not None:
            rows.append(trove_test_conf.write(
                request.trove_test_conf, self.trove_values, dry_run=dry_run))
        return rows


def _datastore_reader(conn):
    """What datastores.choose() reads Trove with: for a trovestack
    Connection, plain calls over its session (load_image.trove_api), so
    that python-troveclient is not imported; troveclient otherwise."""
    if isinstance(conn, connection.Connection):
        from load_image import trove_api

        return trove_api.datastore_client(conn)
    return connection.trove_client(conn)


def _flavor_inventory(conn):
    """(ids, names) of the flavors that exist."""
    existing = flavors.existing(conn, details=False)
    return {f.id for f in existing}, {f.name for f in existing}


def write_test_config(conn, request, *, dry_run=False):
    """tempest.conf and Trove's test config from what the cloud has; [Row]."""
    flavor_ids, flavor_names = _flavor_inventory(conn)
    config = _TestConfig(conn, request, flavor_ids=flavor_ids,
                         flavor_names=flavor_names)
    return config.apply(dry_run=dry_run)


def ensure_management_group(conn, environment, *, dry_run=False):
    """Trove's management security group where Trove looks for it; [Row].

    Trove makes a guest's management port with its service credentials,
    so in the service project, and Neutron accepts on a port only groups
    of the port's project: the group is the service project's, with the
    rules of :func:`instance_prereqs.ensure_security_group` (the one the
    devstack plugin and ``provision`` converge).
    """
    name = environment.security_group
    if not testenv.has_service(conn, 'network'):
        return [Row('security-group', name, testenv.SKIPPED,
                    'no network endpoint in the catalog')]
    wanted = instance_prereqs.Wanted(project=environment.service_project,
                                     security_group=name)
    rows, _ = instance_prereqs.ensure_security_group(
        conn, wanted, quotas.project_id(conn, wanted.project),
        dry_run=dry_run)
    return rows


def init_test_environment(conn, environment, config_request, *,
                          dry_run=False):
    """Flavors, quotas, keypair, security group and test config; [Row].

    Everything that can refuse is checked before anything changes.
    """
    connection.require_admin(conn, 'test-init (flavors, quotas)')
    trove = connection.trove_client(conn)
    specs = flavors.flavor_specs(environment.flavor_set)
    flavors.plan_flavors(conn, specs, replace=environment.replace)
    wants = quotas.wanted(dict(environment.quota_overrides))
    quota_args = dict(service_project=environment.service_project,
                      test_project=environment.test_project)
    quotas.ensure_quotas(conn, trove, wants, dry_run=True, **quota_args)
    if environment.public_key:
        keypair.ensure_keypair(
            conn, environment.keypair_name, environment.public_key,
            replace=environment.replace, dry_run=True)
    flavor_ids, flavor_names = _flavor_inventory(conn)
    config = _TestConfig(
        conn, config_request,
        flavor_ids=flavor_ids | {s.id for s in specs},
        flavor_names=flavor_names | {s.name for s in specs})

    rows = [r.to_row() for r in flavors.ensure_flavors(
        conn, specs, replace=environment.replace, dry_run=dry_run)]
    rows += quotas.ensure_quotas(conn, trove, wants, dry_run=dry_run,
                                 **quota_args)
    if environment.public_key:
        rows.append(keypair.ensure_keypair(
            conn, environment.keypair_name, environment.public_key,
            replace=environment.replace, dry_run=dry_run))
    else:
        rows.append(Row('keypair', '-', testenv.SKIPPED, 'no --public-key'))
    rows += ensure_management_group(conn, environment, dry_run=dry_run)
    rows += config.apply(dry_run=dry_run)
    for row in rows:
        if row.action == testenv.SKIPPED:
            LOG.warning('Skipped %s %s: %s', row.kind, row.name, row.detail)
    return rows
