"""Trove configured for instances on the compute-enabled local cloud.

The management network is the layer's flat provider network (``mgmt``,
the namespace's br-mgmt) with the gateway the namespace holds; guests reach
RabbitMQ there (the forwarder mirrors the broker onto the gateway).  The
prerequisites and Trove's settings come from the code the devstack plugin
uses (:mod:`trovestack.trove.instance_prereqs`,
:mod:`trovestack.trove.instance_setup`).
The datastore images are the ones embedded in the guest image
(``trovestack/<datastore>:<version>``): no registry.  Backups go to the
layer's object storage (:mod:`trovestack.cloud.compute.object_store`).
Each instance's data lives on a Cinder volume (Ceph RBD, see
:mod:`trovestack.cloud.compute.ceph`), as on a production cloud and as
trove-tempest-plugin's scenarios ask.  Trove's
API, task manager and conductor restart only when the configuration they
run with changed.
"""

import pathlib
import shutil
import subprocess
from collections.abc import Sequence
from typing import Any

from trovestack.cloud import configs
from trovestack.cloud import controlplane
from trovestack.cloud import layout as layout_mod
from trovestack.cloud import registry
from trovestack.cloud.compute import cloud as compute_cloud
from trovestack.cloud.compute import object_store
from trovestack.cloud.compute import paths as paths_mod
from trovestack.common import connection
from trovestack.common import results
from trovestack.trove import instance_prereqs
from trovestack.trove import instance_setup
from trovestack.trove import trove_config

NETWORK = 'trove-mgmt'
# The networks users give their instances, as devstack names them:
# "private" (shared, trove-tempest-plugin's shared_network) behind the
# router "router1" to the external network "public" (flat on the layer's
# data network; the namespace holds its upstream gateway).  The namespace
# reaches an instance on private through the router (its route, added with
# the bridges) or on the floating IP Trove gives a public instance, as a
# devstack host reaches its instances.
PUBLIC_NETWORK, USER_NETWORK, ROUTER = 'public', 'private', 'router1'
KEYPAIR = 'trove-mgmt'
TROVE_SERVICES = ('trove', 'trove-taskmanager', 'trove-conductor')
# A copy of trove.conf as Trove's running services read it at their last
# start by this module: ``cloud up`` rewrites trove.conf without restarting
# them, so the file itself does not tell what they run with.
RUNNING_COPY = '.trove.conf.running'
SWIFT_CLIENT = 'trovestack.cloud.compute.trove_swift.swift_client'


def config_files(layout: layout_mod.Layout) -> dict[str, pathlib.Path]:
    """{file name: path} of Trove's two configuration files."""
    trove_dir = layout.config_dir('trove')
    return {trove_config.TROVE_CONF: configs.config_file('trove', layout),
            trove_config.GUESTAGENT_CONF:
                trove_dir / trove_config.GUESTAGENT_CONF}


def private_config_files(
        layout: layout_mod.Layout) -> dict[str, pathlib.Path]:
    """:func:`config_files`, the guest agent's made first, private (it
    will hold the messaging password)."""
    files = config_files(layout)
    files[trove_config.GUESTAGENT_CONF].touch(mode=0o600)
    return files


def key_file(layout: layout_mod.Layout) -> pathlib.Path:
    """The private half of the cloud's management key pair (keypair
    KEYPAIR, which Trove gives its guests)."""
    return layout.root / 'compute' / 'trove-mgmt-key'


def public_key_file(layout: layout_mod.Layout) -> pathlib.Path | None:
    """The public half of the cloud's management key pair, made once
    (provision's compute profile, or the devstack plugin's configuration
    on this cloud, whichever comes first); None without ssh-keygen."""
    key = key_file(layout)
    if not key.exists():
        if shutil.which('ssh-keygen') is None:
            return None
        subprocess.run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '',
                        '-C', 'trovestack trove-mgmt', '-f', str(key)],
                       check=True, capture_output=True)
    return key.with_suffix('.pub')


def _public_key(layout: layout_mod.Layout) -> str:
    """The public key's text, or '' without ssh-keygen."""
    path = public_key_file(layout)
    return path.read_text().strip() if path is not None else ''


def _compute_state(
        local_cloud: controlplane.LocalCloud) -> paths_mod.ComputeState:
    """The compute layer's state: Trove is set up for a layer that is up,
    which has its state."""
    layer = compute_cloud.ComputeLayer(local_cloud.layout)
    return layer.state  # type: ignore[return-value]


def wanted(local_cloud: controlplane.LocalCloud) -> instance_prereqs.Wanted:
    """The instance prerequisites Trove needs on the compute layer: its
    flat management network with the namespace's gateway, shared; the
    cloud's management key pair."""
    cstate = _compute_state(local_cloud)
    return instance_prereqs.Wanted(
        network_name=NETWORK, cidr=cstate.mgmt_cidr,
        physical_network=paths_mod.PHYSICAL_NETWORK, gateway=cstate.gateway,
        shared=True, keypair=KEYPAIR,
        public_key=_public_key(local_cloud.layout))


def ensure_user_networks(
        conn: connection.Connection,
        local_cloud: controlplane.LocalCloud) -> list[results.Row]:
    """``public`` (external), ``private`` (shared) and the router between
    them, found or made (in the project of ``conn``, like the router);
    [Row]."""
    cstate = _compute_state(local_cloud)
    project_id = conn.current_project_id
    public_rows, public, public_subnet = instance_prereqs.ensure_network(
        conn, instance_prereqs.Wanted(
            network_name=PUBLIC_NETWORK, cidr=cstate.data_cidr,
            physical_network=paths_mod.DATA_NETWORK,
            gateway=cstate.data_gateway, external=True, dhcp=False),
        project_id)
    # Replies to the namespace go back through the router (which undoes
    # the floating IP's NAT) even when the guest's default route is the
    # management network's.
    private_rows, _, subnet = instance_prereqs.ensure_network(
        conn, instance_prereqs.Wanted(
            network_name=USER_NETWORK, cidr=cstate.private_cidr,
            gateway=cstate.private_gateway, shared=True,
            host_routes=((cstate.data_cidr, cstate.private_gateway),)),
        project_id)
    gateway = _router_gateway(public, public_subnet, cstate.router_address)
    return [*public_rows, *private_rows, _router(conn, gateway, subnet)]


def _router_gateway(public: Any, public_subnet: Any,
                    address: str) -> dict[str, Any]:
    """The router's external gateway: a fixed address (the namespace
    routes the private network through it) and no SNAT.  The namespace is
    the only "outside" here, and it reaches the private network directly:
    with SNAT, OVN rewrote the source of a guest's replies on
    connections the namespace opened to a fixed address (the SYN-ACK
    went out as it came, the data after it from the router's address),
    the namespace reset them and clients timed out in their handshake."""
    return {'network_id': public.id, 'enable_snat': False,
            'external_fixed_ips': [{'subnet_id': public_subnet.id,
                                    'ip_address': address}]}


def _router(conn: connection.Connection, gateway: dict[str, Any],
            subnet: Any) -> results.Row:
    router = conn.network.find_router(ROUTER)
    if router is None:
        router = conn.network.create_router(
            name=ROUTER, external_gateway_info=gateway)
        conn.network.add_interface_to_router(router, subnet_id=subnet.id)
        return results.Row('router', ROUTER, results.CREATED, router.id)
    changed = []
    if not _gateway_matches(router.external_gateway_info, gateway):
        # Cleared first: neutron's OVN driver records a new address of a
        # gateway port in neutron only (the router's OVN port kept the old
        # one, and nothing answered ARP for the new), not for a new port.
        conn.network.update_router(router, external_gateway_info={})
        conn.network.update_router(router, external_gateway_info=gateway)
        changed.append('gateway {} without SNAT'.format(
            gateway['external_fixed_ips'][0]['ip_address']))
    interfaces = conn.network.ports(device_id=router.id,
                                    device_owner='network:router_interface')
    if not any(ip.get('subnet_id') == subnet.id
               for port in interfaces for ip in port.fixed_ips):
        conn.network.add_interface_to_router(router, subnet_id=subnet.id)
        changed.append(f'interface on {subnet.cidr}')
    if changed:
        return results.Row('router', ROUTER, results.UPDATED,
                           f'{router.id} ' + ', '.join(changed))
    return results.Row('router', ROUTER, results.UNCHANGED, router.id)


def _gateway_matches(found: dict[str, Any], wanted: dict[str, Any]) -> bool:
    """Whether a router's external_gateway_info is ``wanted``'s network,
    SNAT setting and address."""
    found = found or {}
    addresses = {ip.get('ip_address')
                 for ip in found.get('external_fixed_ips') or ()}
    return (found.get('network_id') == wanted['network_id']
            and bool(found.get('enable_snat')) == wanted['enable_snat']
            and addresses == {wanted['external_fixed_ips'][0]['ip_address']})


def instance_settings(
        local_cloud: controlplane.LocalCloud,
        prepared: instance_prereqs.Prepared, datastores: Sequence[str], *,
        backup_images: dict[str, str] | None = None,
        registries: Sequence[str] = ()) -> trove_config.InstanceSettings:
    """Trove's settings for instances of ``datastores`` on the compute
    layer: what ``prepared`` converged, the datastore images embedded in
    the guest image, the backup images guests pull (``backup_images``
    {datastore: repository}, from ``registries``), volumes, and messaging
    through the management network's gateway."""
    return instance_setup.instance_settings(
        prepared,
        docker_images=trove_config.docker_images(list(datastores),
                                                 source='embedded'),
        backup_docker_images=backup_images or {},
        insecure_registries=list(registries),
        volume_support=True,
        guest_transport_url=instance_prereqs.guest_transport_url(
            # a configured cloud has its broker, an up layer its state
            local_cloud.broker.transport_url(),  # type: ignore[union-attr]
            _compute_state(local_cloud).gateway))


def object_storage_options(
        local_cloud: controlplane.LocalCloud) -> dict[str, Any]:
    """{file name: {section: {option: value}}}: guests reach the layer's
    object storage on the management network's gateway, Trove's own calls
    on the catalog's URL (see trove_swift)."""
    swift_url = object_store.guest_url(_compute_state(local_cloud))
    return {trove_config.TROVE_CONF: {'DEFAULT': {
                'swift_url': swift_url, 'remote_swift_client': SWIFT_CLIENT}},
            trove_config.GUESTAGENT_CONF: {'DEFAULT': {
                'swift_url': swift_url}}}


def extra_options(
        local_cloud: controlplane.LocalCloud) -> dict[str, Any]:
    """{file name: {section: {option: value}}} of the compute layer's own
    options: where guests find their configuration and object storage."""
    files = config_files(local_cloud.layout)
    storage = object_storage_options(local_cloud)
    server, guest = trove_config.TROVE_CONF, trove_config.GUESTAGENT_CONF
    return {server: {'DEFAULT': {
                'guest_config': str(files[guest]),
                **storage[server]['DEFAULT']}},
            guest: {'DEFAULT': {
                'control_exchange': configs.CONTROL_EXCHANGE,
                **storage[guest]['DEFAULT']}}}


def guest_registry(
        local_cloud: controlplane.LocalCloud) -> tuple[str, str] | None:
    """(address this host pushes to, address guests pull from) of the
    cloud's registry (the forwarder mirrors it onto the management
    network's gateway), or None when the cloud runs none."""
    # a configured cloud has its state
    state: layout_mod.CloudState = local_cloud.state  # type: ignore[assignment]
    if not state.registry:
        return None
    gateway = _compute_state(local_cloud).gateway
    port = state.ports[controlplane.REGISTRY]
    return (registry.join_host_port(layout_mod.HOST, port),
            registry.join_host_port(gateway, port))


def _running_record(local_cloud: controlplane.LocalCloud, text: str) -> str:
    """trove.conf's text under the pids of Trove's services."""
    pids = [local_cloud.supervisor.pid(name) for name in TROVE_SERVICES]
    return f'# pids {pids}\n{text}'


def restart_if_changed(local_cloud: controlplane.LocalCloud,
                       timeout: float = 120.0) -> results.Row:
    """Trove's API, task manager and conductor restarted when trove.conf
    changed since they last started here."""
    current = config_files(local_cloud.layout)[trove_config.TROVE_CONF]
    running = current.with_name(RUNNING_COPY)
    text = current.read_text()
    if running.exists() and \
            running.read_text() == _running_record(local_cloud, text):
        return results.Row('restart', ' '.join(TROVE_SERVICES),
                           results.UNCHANGED, 'configuration unchanged')
    local_cloud.restart(TROVE_SERVICES, timeout)
    running.touch(mode=0o600)
    running.write_text(_running_record(local_cloud, text))
    return results.Row('restart', ' '.join(TROVE_SERVICES), results.OK,
                       'configuration changed')
