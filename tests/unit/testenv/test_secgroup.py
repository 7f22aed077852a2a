"""test-init's management security group: the service project's, with
instance_prereqs' rules (the group the devstack plugin converges)."""

import types

from tests.unit.testenv import fakes
from trovestack.orchestration import testconfig
from trovestack.testenv import secgroup
from trovestack.trove import instance_prereqs


def _rule(protocol, port):
    return types.SimpleNamespace(
        direction='ingress', ether_type='IPv4', protocol=protocol,
        port_range_min=port, port_range_max=port,
        remote_ip_prefix='0.0.0.0/0', remote_group_id=None)


def _conn(services=('network', 'identity')):
    conn = fakes.connection(services=services)
    conn.identity.find_project.return_value = types.SimpleNamespace(
        id='service-id')
    return conn


def _environment(**changes):
    return testconfig.EnvironmentRequest(**changes)


def test_skipped_without_network_service():
    conn = _conn(services=('compute',))
    changes = testconfig.ensure_management_group(conn, _environment())
    assert [(c.action, c.detail) for c in changes] == [
        ('skipped', 'no network endpoint in the catalog')]
    conn.network.find_security_group.assert_not_called()


def test_group_and_rules_made_in_the_service_project():
    conn = _conn()
    conn.network.find_security_group.return_value = None
    conn.network.create_security_group.return_value = types.SimpleNamespace(
        id='sg-1')
    changes = testconfig.ensure_management_group(
        conn, _environment(service_project='trove-guests'))
    conn.identity.find_project.assert_called_once_with(
        'trove-guests', ignore_missing=True)
    conn.network.find_security_group.assert_called_once_with(
        'trove-mgmt', project_id='service-id')
    assert conn.network.create_security_group.call_args.kwargs[
        'project_id'] == 'service-id'
    assert {c.action for c in changes} == {'created'}
    assert len(changes) == 1 + len(instance_prereqs.DEFAULT_RULES)
    conn.network.create_security_group_rule.assert_any_call(
        security_group_id='sg-1', direction='ingress', ethertype='IPv4',
        protocol='tcp', port_range_min=5672, port_range_max=5672,
        remote_ip_prefix='0.0.0.0/0', project_id='service-id')


def test_existing_rules_are_kept_and_missing_added():
    conn = _conn()
    conn.network.find_security_group.return_value = types.SimpleNamespace(
        id='sg-1')
    present = [_rule(r.protocol, r.port)
               for r in instance_prereqs.DEFAULT_RULES if r.port != 3306]
    present.append(_rule('tcp', 8443))  # not ours: left alone
    conn.network.security_group_rules.return_value = present
    changes = testconfig.ensure_management_group(conn, _environment())
    created = [c.name for c in changes if c.action == 'created']
    assert created == ['trove-mgmt:tcp/3306']
    assert conn.network.create_security_group_rule.call_count == 1
    conn.network.delete_security_group_rule.assert_not_called()


def test_dry_run_creates_nothing():
    conn = _conn()
    conn.network.find_security_group.return_value = None
    changes = testconfig.ensure_management_group(conn, _environment(),
                                                 dry_run=True)
    assert {c.action for c in changes} == {'would-create'}
    conn.network.create_security_group.assert_not_called()
    conn.network.create_security_group_rule.assert_not_called()


def test_add_missing_rules_reports_each_rule():
    conn = _conn()
    group = types.SimpleNamespace(id='sg-1')
    rules = (secgroup.Rule('icmp', None, 'ping'),
             secgroup.Rule('tcp', 22, 'ssh'))
    rows = secgroup.add_missing_rules(conn, group, 'g', rules,
                                      [_rule('icmp', None)])
    assert [(r.name, r.action) for r in rows] == [
        ('g:icmp', 'unchanged'), ('g:tcp/22', 'created')]
