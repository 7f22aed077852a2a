"""What a cloud needs before Trove can create an instance, converged.

Trove boots each guest in its service project with a port on a management
network (``management_networks``), that port's security groups
(``management_security_groups``) and optionally a keypair of the Trove
service user (``nova_keypair``).  :func:`converge` finds or creates each of
them, raises the service project's quotas to a minimum, and returns the
ids :mod:`trovestack.trove.trove_config` writes into Trove's configuration.
Every function takes an openstacksdk connection with the admin role and
returns :class:`trovestack.common.results.Row` rows; running it again
changes nothing and never duplicates a resource.
"""

import dataclasses
import ipaddress
import logging
import os
import subprocess
import urllib.parse
from collections.abc import Callable
from typing import Any

from trovestack.common import connection
from trovestack.common import errors
from trovestack.common import results
from trovestack.testenv import has_service
from trovestack.testenv import keypair as testenv_keypair
from trovestack.testenv import quotas as testenv_quotas
from trovestack.testenv import secgroup as testenv_secgroup

LOG = logging.getLogger(__name__)

Rule = testenv_secgroup.Rule

# Ingress rules of the management security group.  On a guest's port:
# ping, SSH and the databases, from the control plane.  On the control
# plane's own port (``host_port``, which carries the same group): the
# services guests connect to, RabbitMQ and the local registry.
DEFAULT_RULES = (
    Rule('icmp', None, 'ping'),
    Rule('tcp', 22, 'ssh (debugging a guest)'),
    Rule('tcp', 3306, 'mysql/mariadb from the control plane'),
    Rule('tcp', 5432, 'postgresql from the control plane'),
    Rule('tcp', 5672, 'rabbitmq on the host port'),
    Rule('tcp', 4000, 'local registry on the host port'),
)


@dataclasses.dataclass(frozen=True)
class Wanted:
    """The prerequisites to converge (defaults = upstream's devstack)."""

    project: str = 'service'
    user: str = 'trove'
    network_name: str = 'trove-mgmt'
    subnet_name: str = ''
    cidr: str = '192.168.254.0/24'
    shared: bool = False
    # A flat provider network on this physical network (the compute-enabled
    # local cloud's), and the subnet's gateway: an address the control
    # plane holds on it.  Empty: a tenant network without a gateway.
    physical_network: str = ''
    gateway: str = ''
    # For the other networks a cloud of ours gives its users: an external
    # one (floating IPs, no DHCP) and routes the subnet hands out
    # ((destination, nexthop) pairs).
    external: bool = False
    dhcp: bool = True
    host_routes: tuple = ()
    security_group: str = 'trove-mgmt'
    rules: tuple = DEFAULT_RULES
    keypair: str = 'trove-mgmt'
    public_key: str = ''
    host_port: str = ''
    host: str = ''
    quotas: bool = True

    def __post_init__(self) -> None:
        try:
            network = ipaddress.ip_network(self.cidr)
        except ValueError:
            raise errors.UserError(
                f'management subnet {self.cidr!r} is not a CIDR such as '
                '192.168.254.0/24') from None
        if network.version != 4 or network.num_addresses < 8:
            raise errors.UserError(
                f'management subnet {self.cidr} must be IPv4, /29 or larger')
        if not self.subnet_name:
            object.__setattr__(self, 'subnet_name',
                               f'{self.network_name}-subnet')
        if self.public_key:
            object.__setattr__(self, 'public_key',
                               testenv_keypair.canonical(self.public_key))


@dataclasses.dataclass
class Prepared:
    """What converge did, and the ids Trove's configuration needs."""

    rows: list
    network_id: str | None = None
    subnet_id: str | None = None
    security_group_id: str | None = None
    keypair: str | None = None
    port: object = None


def _row(kind: str, name: str, action: str, detail: str = '', *,
         dry_run: bool = False) -> results.Row:
    if dry_run:
        action = {results.CREATED: results.WOULD_CREATE,
                  results.UPDATED: results.WOULD_UPDATE}.get(action, action)
    return results.Row(kind, name, action, detail)


def project_id_of(conn: connection.Connection, name: str) -> str:
    project = conn.identity.find_project(name, ignore_missing=True)
    if project is None:
        raise errors.UserError(f'project {name!r} does not exist')
    return project.id


def ensure_network(
        conn: connection.Connection, wanted: Wanted, project_id: str, *,
        dry_run: bool = False) -> tuple[list[results.Row], Any, Any]:
    """The network of ``wanted`` (the management network unless told
    otherwise) and its subnet; ([Row], network, subnet)."""
    network = conn.network.find_network(wanted.network_name,
                                        project_id=project_id)
    rows = []
    if network is None:
        if not dry_run:
            LOG.info('Creating network %s', wanted.network_name)
            provider: dict[str, Any] = {'provider_network_type': 'flat',
                        'provider_physical_network': wanted.physical_network
                        } if wanted.physical_network else {}
            if wanted.external:
                provider['is_router_external'] = True
            network = conn.network.create_network(
                name=wanted.network_name, project_id=project_id,
                shared=wanted.shared, **provider)
        rows.append(_row('network', wanted.network_name, results.CREATED,
                         getattr(network, 'id', ''), dry_run=dry_run))
    elif bool(network.is_shared) == wanted.shared:
        rows.append(_row('network', wanted.network_name, results.UNCHANGED,
                         network.id))
    else:
        if not dry_run:
            conn.network.update_network(network, shared=wanted.shared)
        rows.append(_row('network', wanted.network_name, results.UPDATED,
                         f'{network.id} shared={wanted.shared}',
                         dry_run=dry_run))
    subnet = None if network is None else conn.network.find_subnet(
        wanted.subnet_name, network_id=network.id)
    if subnet is not None:
        if ipaddress.ip_network(subnet.cidr) != \
                ipaddress.ip_network(wanted.cidr):
            raise errors.UserError(
                f'subnet {wanted.subnet_name} exists with {subnet.cidr}, '
                f'not {wanted.cidr}; delete it or use its range')
        rows.append(_row('subnet', wanted.subnet_name, results.UNCHANGED,
                         subnet.cidr))
        return rows, network, subnet
    if not dry_run:
        LOG.info('Creating subnet %s (%s)', wanted.subnet_name, wanted.cidr)
        # No DNS servers, and a gateway only where the control plane holds
        # it: guests reach the control plane on this network only, and
        # nothing outside it.
        routes = {'host_routes': [
            {'destination': destination, 'nexthop': nexthop}
            for destination, nexthop in wanted.host_routes]
        } if wanted.host_routes else {}
        subnet = conn.network.create_subnet(
            name=wanted.subnet_name, network_id=network.id,
            project_id=project_id, ip_version=4, cidr=wanted.cidr,
            gateway_ip=wanted.gateway or None, enable_dhcp=wanted.dhcp,
            **routes)
    rows.append(_row('subnet', wanted.subnet_name, results.CREATED,
                     wanted.cidr, dry_run=dry_run))
    return rows, network, subnet


def ensure_security_group(
        conn: connection.Connection, wanted: Wanted, project_id: str, *,
        dry_run: bool = False) -> tuple[list[results.Row], Any]:
    """The management security group and its rules; ([Row], group)."""
    name = wanted.security_group
    group = conn.network.find_security_group(name, project_id=project_id)
    rows = []
    existing = []
    if group is None:
        if not dry_run:
            LOG.info('Creating security group %s', name)
            group = conn.network.create_security_group(
                name=name, project_id=project_id,
                description="Trove guests' management ports")
        rows.append(_row('security-group', name, results.CREATED,
                         getattr(group, 'id', ''), dry_run=dry_run))
    else:
        existing = list(conn.network.security_group_rules(
            security_group_id=group.id))
        rows.append(_row('security-group', name, results.UNCHANGED,
                         group.id))
    rows.extend(testenv_secgroup.add_missing_rules(
        conn, group, name, wanted.rules, existing, dry_run=dry_run,
        project_id=project_id))
    return rows, group


def ensure_host_port(conn: connection.Connection, wanted: Wanted,
                     project_id: str, network: Any, group: Any, *,
                     dry_run: bool = False) -> tuple[list[results.Row], Any]:
    """The control plane's own port on the management network, for a host
    that plugs it in (e.g. devstack's OVS); ([Row], port)."""
    port = None if network is None else conn.network.find_port(
        wanted.host_port, network_id=network.id)
    if port is not None:
        return [_row('port', wanted.host_port, results.UNCHANGED,
                     _port_detail(port))], port
    if not dry_run:
        LOG.info('Creating port %s', wanted.host_port)
        attrs = {'name': wanted.host_port, 'network_id': network.id,
                 'project_id': project_id, 'device_owner': 'trove',
                 'security_group_ids': [group.id]}
        if wanted.host:
            attrs['binding_host_id'] = wanted.host
        port = conn.network.create_port(**attrs)
    return [_row('port', wanted.host_port, results.CREATED,
                 _port_detail(port), dry_run=dry_run)], port


def _port_detail(port: Any) -> str:
    if port is None:
        return ''
    addresses = ','.join(ip['ip_address'] for ip in port.fixed_ips or [])
    return f'{port.mac_address} {addresses}'.strip()


def ensure_keypair(conn: connection.Connection, wanted: Wanted, *,
                   dry_run: bool = False) -> list[results.Row]:
    """The Trove service user's keypair from ``wanted.public_key``; a
    different key under that name is replaced.  [Row]."""
    user = conn.identity.find_user(wanted.user, ignore_missing=True)
    if user is None:
        raise errors.UserError(f'user {wanted.user!r} does not exist')
    existing = conn.compute.find_keypair(wanted.keypair, user_id=user.id)
    if existing is not None and testenv_keypair.canonical(
            existing.public_key or '') == wanted.public_key:
        return [_row('keypair', wanted.keypair, results.UNCHANGED,
                     existing.fingerprint or '')]
    action = results.CREATED if existing is None else results.UPDATED
    if dry_run:
        return [_row('keypair', wanted.keypair, action, dry_run=True)]
    if existing is not None:
        conn.compute.delete_keypair(existing, user_id=user.id)
    created = conn.compute.create_keypair(
        name=wanted.keypair, public_key=wanted.public_key, user_id=user.id)
    return [_row('keypair', wanted.keypair, action,
                 created.fingerprint or '')]


def ensure_quotas(conn: connection.Connection, wanted: Wanted, *,
                  dry_run: bool = False) -> list[results.Row]:
    """Compute, volume and network quotas of Trove's service project,
    raised to the minimums upstream's devstack sets.  [Row]."""
    wants = [w for w in testenv_quotas.wanted() if w.project == 'service']
    changes = testenv_quotas.ensure_quotas(
        conn, None, wants, service_project=wanted.project, dry_run=dry_run)
    return [_as_row(change) for change in changes]


def _as_row(change: Any) -> results.Row:
    action = {'raised': results.UPDATED,
              'would-raise': results.WOULD_UPDATE}.get(change.action,
                                                       change.action)
    return results.Row(change.kind, change.name, action, change.detail)


def converge(conn: connection.Connection, wanted: Wanted, *,
             dry_run: bool = False) -> 'Prepared':
    """Every prerequisite of ``wanted``; returns :class:`Prepared`.

    Without a network service in the catalog (the API-only local cloud)
    there is nothing to converge: one SKIPPED row says so.
    """
    if not has_service(conn, 'network'):
        return Prepared([results.Row('network', wanted.network_name,
                                     results.SKIPPED,
                                     'no network endpoint in the catalog')])
    project_id = project_id_of(conn, wanted.project)
    rows, network, subnet = ensure_network(conn, wanted, project_id,
                                           dry_run=dry_run)
    group_rows, group = ensure_security_group(conn, wanted, project_id,
                                              dry_run=dry_run)
    rows += group_rows
    prepared = Prepared(rows, getattr(network, 'id', None),
                        getattr(subnet, 'id', None),
                        getattr(group, 'id', None))
    if wanted.host_port:
        port_rows, prepared.port = ensure_host_port(
            conn, wanted, project_id, network, group, dry_run=dry_run)
        rows += port_rows
    if wanted.keypair and wanted.public_key:
        rows += ensure_keypair(conn, wanted, dry_run=dry_run)
        prepared.keypair = wanted.keypair
    if wanted.quotas:
        rows += ensure_quotas(conn, wanted, dry_run=dry_run)
    return prepared


def plug_host_port(
        port: Any, cidr: str, *, bridge: str = 'br-int',
        interface: str = 'trove-mgmt',
        run: Callable[..., subprocess.CompletedProcess[str]] = subprocess.run,
) -> list[results.Row]:
    """Give this host the management port's address: an OVS internal
    interface bound to the Neutron port (as upstream's devstack plugin
    does), so guests reach the control plane on the management network.
    Every command is idempotent.  [Row]."""
    prefix = ipaddress.ip_network(cidr).prefixlen
    address = port.fixed_ips[0]['ip_address']
    commands = (
        ['ovs-vsctl', '--', '--may-exist', 'add-port', bridge, interface,
         '--', 'set', 'Interface', interface, 'type=internal',
         'external-ids:iface-status=active',
         f'external-ids:attached-mac={port.mac_address}',
         f'external-ids:iface-id={port.id}',
         'external-ids:skip_cleanup=true'],
        ['ip', 'link', 'set', 'dev', interface, 'address', port.mac_address],
        ['ip', 'addr', 'replace', f'{address}/{prefix}', 'dev', interface],
        ['ip', 'link', 'set', interface, 'up'],
    )
    sudo = [] if os.geteuid() == 0 else ['sudo']
    for argv in commands:
        result = run(sudo + argv, capture_output=True, text=True,
                     check=False)
        if result.returncode != 0:
            raise errors.UserError(
                f'{" ".join(argv[:3])} failed: '
                f'{(result.stderr or "").strip()[:200]}')
    return [results.Row('host-interface', interface, results.OK,
                        f'{address}/{prefix} on {bridge}')]


def guest_transport_url(server_url: str, host: str) -> str:
    """The control plane's messaging URL with ``host`` as the broker's
    address, as guests reach it."""
    parts = urllib.parse.urlsplit(server_url)
    userinfo, _, hostport = parts.netloc.rpartition('@')
    port = hostport.rpartition(':')[2] if ':' in hostport else ''
    netloc = f'{userinfo}@{host}' if userinfo else host
    if port:
        netloc += f':{port}'
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))
