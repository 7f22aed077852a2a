"""Security-group rules: what one ingress rule is, and the loop that adds
the missing ones to a group (rules that are not ours are left alone).

The management group Trove puts on guests' ports, with its rules, is
:func:`trovestack.trove.instance_prereqs.ensure_security_group`'s;
``test-init`` converges the same group through it
(:mod:`trovestack.orchestration.testconfig`).
"""

import dataclasses
from collections.abc import Iterable
from typing import Any

from trovestack import testenv
from trovestack.common import connection
from trovestack.common.results import Row

DEFAULT_GROUP_NAME = 'trove-mgmt'


@dataclasses.dataclass(frozen=True)
class Rule:
    """One ingress rule; ``port`` None means every port (or ICMP)."""

    protocol: str
    port: int | None
    purpose: str

    def matches(self, rule: Any) -> bool:
        return (rule.direction == 'ingress'
                and (rule.ether_type or 'IPv4') == 'IPv4'
                and rule.protocol == self.protocol
                and rule.port_range_min == self.port
                and rule.port_range_max == self.port
                and rule.remote_ip_prefix in (None, '0.0.0.0/0')
                and rule.remote_group_id is None)

    def label(self) -> str:
        return self.protocol if self.port is None else \
            f'{self.protocol}/{self.port}'


def add_missing_rules(conn: connection.Connection, group: Any, name: str,
                      rules: Iterable[Rule], existing: Iterable[Any], *,
                      dry_run: bool = False,
                      project_id: str | None = None) -> list[Row]:
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
