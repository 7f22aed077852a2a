"""The security group Trove puts on guests' management ports.

Guests must reach RabbitMQ, the image registry and the API endpoints, and
developers must reach them by SSH and ping. The group and each rule are
found or created; rules that are not ours are left alone. Without a
network service in the catalog (the local control plane) this is skipped.
"""

import dataclasses
import logging

from trovestack import testenv
from trovestack.common.results import Row

LOG = logging.getLogger(__name__)

DEFAULT_GROUP_NAME = 'trove-mgmt'


@dataclasses.dataclass(frozen=True)
class Rule:
    """One ingress rule; ``port`` None means every port (or ICMP)."""

    protocol: str
    port: int | None
    purpose: str

    def matches(self, rule):
        return (rule.direction == 'ingress'
                and (rule.ether_type or 'IPv4') == 'IPv4'
                and rule.protocol == self.protocol
                and rule.port_range_min == self.port
                and rule.port_range_max == self.port
                and rule.remote_ip_prefix in (None, '0.0.0.0/0')
                and rule.remote_group_id is None)

    def label(self):
        return self.protocol if self.port is None else \
            f'{self.protocol}/{self.port}'


def management_rules(*, amqp_port=5672, registry_port=4000):
    """The rules a Trove guest's management port needs."""
    return (
        Rule('icmp', None, 'ping'),
        Rule('tcp', 22, 'ssh'),
        Rule('tcp', amqp_port, 'rabbitmq'),
        Rule('tcp', registry_port, 'docker registry'),
        Rule('tcp', 80, 'http endpoints'),
        Rule('tcp', 443, 'https endpoints'),
        Rule('tcp', 8080, 'swift'),
    )


def ensure_security_group(conn, name=DEFAULT_GROUP_NAME, rules=None, *,
                          dry_run=False):
    """Find or create the group and its rules; [Row]."""
    if not testenv.has_service(conn, 'network'):
        return [Row('security-group', name, testenv.SKIPPED,
                    'no network endpoint in the catalog')]
    rules = management_rules() if rules is None else rules
    group = conn.network.find_security_group(
        name, ignore_missing=True, project_id=conn.current_project_id)
    changes = []
    if group is None:
        action = testenv.CREATED
        if not dry_run:
            LOG.info('Creating security group %s', name)
            group = conn.network.create_security_group(
                name=name, description='Trove guest management access')
        existing = []
    else:
        action = testenv.UNCHANGED
        existing = list(conn.network.security_group_rules(
            security_group_id=group.id))
    changes.append(Row(
        'security-group', name,
        testenv.planned(action) if dry_run else action,
        group.id if group is not None else ''))
    changes.extend(add_missing_rules(conn, group, name, rules, existing,
                                     dry_run=dry_run))
    return changes


def add_missing_rules(conn, group, name, rules, existing, *, dry_run=False,
                      project_id=None):
    """Create the ingress rules of ``rules`` that ``existing`` lacks in
    security group ``group`` (called ``name``); a Row per rule."""
    rows = []
    for rule in rules:
        rule_name = f'{name}:{rule.label()}'
        if any(rule.matches(r) for r in existing):
            rows.append(Row('security-group-rule', rule_name,
                            testenv.UNCHANGED, rule.purpose))
            continue
        if not dry_run:
            extra = {'project_id': project_id} if project_id else {}
            conn.network.create_security_group_rule(
                security_group_id=group.id, direction='ingress',
                ethertype='IPv4', protocol=rule.protocol,
                port_range_min=rule.port, port_range_max=rule.port,
                remote_ip_prefix='0.0.0.0/0', **extra)
        rows.append(Row(
            'security-group-rule', rule_name,
            testenv.planned(testenv.CREATED) if dry_run else testenv.CREATED,
            rule.purpose))
    return rows
