"""trovestack.trove.instance_prereqs against an in-memory stand-in for Neutron,
Nova and Keystone (the real-Neutron run is in the compute cloud's tests)."""

import itertools
import types

import pytest

from trovestack import testenv
from trovestack.common import errors
from trovestack.common import results
from trovestack.trove import instance_prereqs

KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHNvbWVrZXk trove@host'
OTHER_KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG90aGVya2V5 x@y'


class Resource(types.SimpleNamespace):
    def to_dict(self):
        return dict(vars(self))


class FakeCloud:
    """Just enough of openstacksdk's proxies, with Neutron's filters."""

    def __init__(self, services=('network', 'compute')):
        self.services = set(services)
        self.ids = (f'id-{n}' for n in itertools.count(1))
        self.networks, self.subnets, self.groups = [], [], []
        self.rules, self.ports, self.keypairs = [], [], []
        self.calls = []
        self.quota = {'compute': {'cores': 20, 'instances': 10,
                                  'ram': 51200},
                      'network': {'security_groups': 10,
                                  'security_group_rules': 100}}
        self.identity = types.SimpleNamespace(
            find_project=lambda name, ignore_missing: (
                Resource(id='project-service') if name == 'service'
                else None),
            find_user=lambda name, ignore_missing: (
                Resource(id='user-trove') if name == 'trove' else None))
        self.network = types.SimpleNamespace(
            find_network=self._finder(self.networks),
            create_network=self._creator(self.networks, is_shared=False,
                                         rename={'shared': 'is_shared'}),
            update_network=self._update,
            find_subnet=self._finder(self.subnets),
            create_subnet=self._creator(self.subnets),
            find_security_group=self._finder(self.groups),
            create_security_group=self._creator(self.groups),
            security_group_rules=lambda security_group_id: [
                r for r in self.rules
                if r.security_group_id == security_group_id],
            create_security_group_rule=self._creator(
                self.rules, rename={'ethertype': 'ether_type'},
                remote_group_id=None),
            find_port=self._finder(self.ports),
            create_port=self._creator(
                self.ports, mac_address='fa:16:3e:00:00:01',
                fixed_ips=[{'ip_address': '192.168.254.10'}]),
            get_quota=lambda project: Resource(**self.quota['network']),
            update_quota=lambda project, **kw: self.quota['network']
            .update(kw))
        self.compute = types.SimpleNamespace(
            find_keypair=self._find_keypair,
            create_keypair=self._creator(self.keypairs,
                                         fingerprint='fp'),
            delete_keypair=lambda kp, user_id: self.keypairs.remove(kp),
            get_quota_set=lambda project: Resource(**self.quota['compute']),
            update_quota_set=lambda project, **kw: self.quota['compute']
            .update(kw))

    def _finder(self, store):
        def find(name, **query):
            found = [r for r in store if r.name == name and all(
                getattr(r, k, None) == v for k, v in query.items())]
            assert len(found) <= 1, f'duplicate {name}'
            return found[0] if found else None
        return find

    def _creator(self, store, rename=None, **defaults):
        def create(**attrs):
            for old, new in (rename or {}).items():
                if old in attrs:
                    attrs[new] = attrs.pop(old)
            resource = Resource(id=next(self.ids), **{**defaults, **attrs})
            self.calls.append(('create', resource))
            store.append(resource)
            return resource
        return create

    def _update(self, network, shared):
        network.is_shared = shared
        self.calls.append(('update', network))

    def _find_keypair(self, name, user_id):
        found = [k for k in self.keypairs
                 if k.name == name and k.user_id == user_id]
        return found[0] if found else None


@pytest.fixture
def cloud(monkeypatch):
    fake = FakeCloud()
    has = lambda conn, service: service in conn.services  # noqa: E731
    monkeypatch.setattr(instance_prereqs, 'has_service', has)
    monkeypatch.setattr(testenv, 'has_service', has)
    return fake


def actions(prepared):
    return {(r.kind, r.name): r.action for r in prepared.rows}


def test_first_run_creates_everything(cloud):
    wanted = instance_prereqs.Wanted(public_key=KEY, host_port='trove-port',
                                     host='node1')
    prepared = instance_prereqs.converge(cloud, wanted)
    got = actions(prepared)
    assert got[('network', 'trove-mgmt')] == results.CREATED
    assert got[('subnet', 'trove-mgmt-subnet')] == results.CREATED
    assert got[('security-group', 'trove-mgmt')] == results.CREATED
    assert got[('security-group-rule', 'trove-mgmt:tcp/22')] == \
        results.CREATED
    assert got[('port', 'trove-port')] == results.CREATED
    assert got[('keypair', 'trove-mgmt')] == results.CREATED
    assert got[('quota', 'compute.cores@service')] == results.UPDATED
    assert cloud.quota['compute']['cores'] == 60
    network, = cloud.networks
    subnet, = cloud.subnets
    assert (prepared.network_id, prepared.subnet_id) == (network.id,
                                                         subnet.id)
    assert network.project_id == 'project-service'
    assert subnet.cidr == '192.168.254.0/24' and subnet.gateway_ip is None
    assert prepared.security_group_id == cloud.groups[0].id
    assert len(cloud.rules) == len(instance_prereqs.DEFAULT_RULES)
    port, = cloud.ports
    assert port.binding_host_id == 'node1'
    assert port.security_group_ids == [prepared.security_group_id]
    keypair, = cloud.keypairs
    assert keypair.user_id == 'user-trove'
    assert keypair.public_key == ' '.join(KEY.split()[:2])


def test_rerun_changes_nothing(cloud):
    wanted = instance_prereqs.Wanted(public_key=KEY, host_port='trove-port')
    first = instance_prereqs.converge(cloud, wanted)
    created = len(cloud.calls)
    second = instance_prereqs.converge(cloud, wanted)
    assert len(cloud.calls) == created
    # block-storage is not in this catalog: its quotas are skipped
    assert {r.action for r in second.rows} == {results.UNCHANGED,
                                               results.SKIPPED}
    assert (second.network_id, second.security_group_id, second.subnet_id) \
        == (first.network_id, first.security_group_id, first.subnet_id)


def test_dry_run_changes_nothing(cloud):
    prepared = instance_prereqs.converge(
        cloud, instance_prereqs.Wanted(public_key=KEY, host_port='p'),
        dry_run=True)
    assert cloud.calls == []
    assert cloud.quota['compute']['cores'] == 20
    assert results.WOULD_CREATE in {r.action for r in prepared.rows}
    assert prepared.network_id is None


def test_missing_rule_is_added_alone(cloud):
    wanted = instance_prereqs.Wanted(quotas=False)
    instance_prereqs.converge(cloud, wanted)
    cloud.rules.pop()
    prepared = instance_prereqs.converge(cloud, wanted)
    assert [r.name for r in prepared.rows if r.action == results.CREATED] \
        == ['trove-mgmt:tcp/4000']
    assert len(cloud.rules) == len(instance_prereqs.DEFAULT_RULES)


def test_changed_key_replaces_keypair(cloud):
    instance_prereqs.converge(
        cloud, instance_prereqs.Wanted(public_key=KEY, quotas=False))
    prepared = instance_prereqs.converge(
        cloud, instance_prereqs.Wanted(public_key=OTHER_KEY, quotas=False))
    assert actions(prepared)[('keypair', 'trove-mgmt')] == results.UPDATED
    keypair, = cloud.keypairs
    assert keypair.public_key.endswith('G90aGVya2V5')


def test_no_public_key_no_keypair(cloud):
    prepared = instance_prereqs.converge(
        cloud, instance_prereqs.Wanted(quotas=False))
    assert prepared.keypair is None
    assert cloud.keypairs == []


def test_subnet_with_other_range_is_an_error(cloud):
    instance_prereqs.converge(cloud, instance_prereqs.Wanted(quotas=False))
    with pytest.raises(errors.UserError, match='exists with 192.168.254.0'):
        instance_prereqs.converge(cloud, instance_prereqs.Wanted(
            cidr='10.1.0.0/24', quotas=False))


def test_sharing_follows_the_setting(cloud):
    instance_prereqs.converge(cloud, instance_prereqs.Wanted(quotas=False))
    prepared = instance_prereqs.converge(
        cloud, instance_prereqs.Wanted(shared=True, quotas=False))
    assert actions(prepared)[('network', 'trove-mgmt')] == results.UPDATED
    assert cloud.networks[0].is_shared is True


@pytest.mark.parametrize('cidr', ['nonsense', '2001:db8::/64',
                                  '10.0.0.0/30'])
def test_bad_cidr(cidr):
    with pytest.raises(errors.UserError, match='management subnet'):
        instance_prereqs.Wanted(cidr=cidr)


def test_unknown_project_or_user(cloud):
    with pytest.raises(errors.UserError, match="project 'nope'"):
        instance_prereqs.converge(cloud, instance_prereqs.Wanted(
            project='nope', quotas=False))
    with pytest.raises(errors.UserError, match="user 'nobody'"):
        instance_prereqs.converge(cloud, instance_prereqs.Wanted(
            user='nobody', public_key=KEY, quotas=False))


def test_without_network_service_skips(cloud):
    cloud.services = {'compute'}
    prepared = instance_prereqs.converge(cloud, instance_prereqs.Wanted())
    assert [r.action for r in prepared.rows] == [results.SKIPPED]
    assert cloud.calls == []


def test_plug_host_port_runs_idempotent_commands(monkeypatch):
    ran = []

    def run(argv, **kwargs):
        ran.append(argv)
        return types.SimpleNamespace(returncode=0, stderr='')

    monkeypatch.setattr(instance_prereqs.os, 'geteuid', lambda: 0)
    port = Resource(id='port-1', mac_address='fa:16:3e:00:00:01',
                    fixed_ips=[{'ip_address': '192.168.254.10'}])
    rows = instance_prereqs.plug_host_port(port, '192.168.254.0/24',
                                           run=run)
    assert rows[0].detail == '192.168.254.10/24 on br-int'
    assert ran[0][:5] == ['ovs-vsctl', '--', '--may-exist', 'add-port',
                          'br-int']
    assert 'external-ids:iface-id=port-1' in ran[0]
    assert ['ip', 'addr', 'replace', '192.168.254.10/24', 'dev',
            'trove-mgmt'] in ran


def test_plug_host_port_failure_is_one_line(monkeypatch):
    monkeypatch.setattr(instance_prereqs.os, 'geteuid', lambda: 1000)
    calls = []

    def run(argv, **kwargs):
        calls.append(argv)
        return types.SimpleNamespace(returncode=1, stderr='no bridge\n')

    port = Resource(id='p', mac_address='m',
                    fixed_ips=[{'ip_address': '10.0.0.2'}])
    with pytest.raises(errors.UserError, match='ovs-vsctl .* no bridge'):
        instance_prereqs.plug_host_port(port, '10.0.0.0/24', run=run)
    assert calls[0][0] == 'sudo'


@pytest.mark.parametrize('url,expected', [
    ('rabbit://stackrabbit:s3cret@10.0.0.5:5672/',
     'rabbit://stackrabbit:s3cret@192.168.254.10:5672/'),
    ('rabbit://u:p@controller/trove', 'rabbit://u:p@192.168.254.10/trove'),
])
def test_guest_transport_url(url, expected):
    assert instance_prereqs.guest_transport_url(url, '192.168.254.10') == \
        expected


def test_flat_provider_network_with_the_control_planes_gateway(cloud):
    wanted = instance_prereqs.Wanted(cidr='10.222.0.0/24', shared=True,
                                     physical_network='mgmt',
                                     gateway='10.222.0.1')
    instance_prereqs.converge(cloud, wanted)
    network, = cloud.networks
    subnet, = cloud.subnets
    assert (network.provider_network_type,
            network.provider_physical_network) == ('flat', 'mgmt')
    assert subnet.gateway_ip == '10.222.0.1'
    instance_prereqs.converge(cloud, wanted)
    assert len(cloud.networks) == len(cloud.subnets) == 1


def test_external_network_without_dhcp_and_a_subnet_with_routes(cloud):
    public = instance_prereqs.Wanted(
        network_name='public', cidr='10.223.0.0/24', physical_network='data',
        gateway='10.223.0.1', external=True, dhcp=False)
    instance_prereqs.ensure_network(cloud, public, 'project-admin')
    private = instance_prereqs.Wanted(
        network_name='private', cidr='10.224.0.0/24', gateway='10.224.0.1',
        shared=True, host_routes=(('10.223.0.0/24', '10.224.0.1'),))
    instance_prereqs.ensure_network(cloud, private, 'project-admin')
    external, internal = cloud.networks
    assert external.is_router_external and internal.is_shared
    public_subnet, private_subnet = cloud.subnets
    assert public_subnet.enable_dhcp is False
    assert private_subnet.enable_dhcp is True
    assert private_subnet.host_routes == [
        {'destination': '10.223.0.0/24', 'nexthop': '10.224.0.1'}]
    assert not hasattr(public_subnet, 'host_routes')
    rows, _, _ = instance_prereqs.ensure_network(cloud, private,
                                                 'project-admin')
    assert [row.action for row in rows] == ['unchanged', 'unchanged']
