import types

from tests.unit.testenv import fakes
from trovestack.testenv import secgroup


def _rule(protocol, port):
    return types.SimpleNamespace(
        direction='ingress', ether_type='IPv4', protocol=protocol,
        port_range_min=port, port_range_max=port,
        remote_ip_prefix='0.0.0.0/0', remote_group_id=None)


def test_skipped_without_network_service():
    conn = fakes.connection(services=('compute',))
    changes = secgroup.ensure_security_group(conn)
    assert [(c.action, c.detail) for c in changes] == [
        ('skipped', 'no network endpoint in the catalog')]
    conn.network.find_security_group.assert_not_called()


def test_creates_group_and_rules():
    conn = fakes.connection(services=('network',))
    conn.network.find_security_group.return_value = None
    conn.network.create_security_group.return_value = types.SimpleNamespace(
        id='sg-1')
    changes = secgroup.ensure_security_group(conn)
    assert {c.action for c in changes} == {'created'}
    assert len(changes) == 1 + len(secgroup.management_rules())
    conn.network.create_security_group_rule.assert_any_call(
        security_group_id='sg-1', direction='ingress', ethertype='IPv4',
        protocol='tcp', port_range_min=5672, port_range_max=5672,
        remote_ip_prefix='0.0.0.0/0')


def test_existing_rules_are_kept_and_missing_added():
    conn = fakes.connection(services=('network',))
    conn.network.find_security_group.return_value = types.SimpleNamespace(
        id='sg-1')
    present = [_rule(r.protocol, r.port) for r in secgroup.management_rules()
               if r.port != 443]
    conn.network.security_group_rules.return_value = present
    changes = secgroup.ensure_security_group(conn)
    created = [c.name for c in changes if c.action == 'created']
    assert created == ['trove-mgmt:tcp/443']
    assert conn.network.create_security_group_rule.call_count == 1


def test_dry_run_creates_nothing():
    conn = fakes.connection(services=('network',))
    conn.network.find_security_group.return_value = None
    changes = secgroup.ensure_security_group(conn, dry_run=True)
    assert {c.action for c in changes} == {'would-create'}
    conn.network.create_security_group.assert_not_called()
    conn.network.create_security_group_rule.assert_not_called()
