"""The compute cloud: a nova server boots on the management network, gets
its address from OVN's DHCP and answers TCP inside the cloud's namespace.

Root only, minutes; one guest at a time (an idle TCG guest costs half a
core).  Everything runs in a cloud of its own, wiped at the end.
"""

import ipaddress
import os
import shutil
import subprocess
import time

import pytest

from trovestack import netns
from trovestack.cloud import bootstrap
from trovestack.cloud import controlplane
from trovestack.cloud.compute import cloud as compute_cloud
from trovestack.cloud.compute import test_image

pytestmark = pytest.mark.compute
NETWORK = 'trovestack-test-mgmt'
BOOT_TIMEOUT = 900


def _missing():
    if os.geteuid() != 0:
        return 'needs root'
    try:
        compute_cloud._check_binaries()
    except Exception as exc:  # noqa: BLE001 - the reason is the skip text
        return str(exc)
    for tool in test_image.TOOLS:
        if shutil.which(tool) is None:
            return f'{tool} missing'
    return None


def _host_addresses():
    out = subprocess.run(['ip', '-o', 'addr'], capture_output=True,
                         text=True, check=True).stdout
    return {line.split()[3] for line in out.splitlines()}


@pytest.fixture(scope='module')
def compute(tmp_path_factory):
    reason = _missing()
    if reason:
        pytest.skip(reason)
    root = tmp_path_factory.mktemp('compute-cloud')
    local = controlplane.LocalCloud(root / 'state')
    before = _host_addresses()
    try:
        rows, health = compute_cloud.up_with_control_plane(
            local, base_port=0, clouds_yaml_path=root / 'clouds.yaml')
        yield local, rows, health, before
    finally:
        # Keep the logs (the state directory goes) for a failure's story.
        shutil.copytree(local.layout.root / 'logs', root / 'logs',
                        dirs_exist_ok=True)
        layer = compute_cloud.ComputeLayer(local.layout)
        layer.wipe()
        local.wipe()
        assert not netns.exists(layer.paths.namespace)


def test_every_process_runs(compute):
    local, rows, health, _ = compute
    assert all(row[1] == 'running' for row in rows), rows
    assert {h.name: h.condition for h in health} == {
        h.name: 'running' for h in health}
    inside = {h.name for h in health if h.where.startswith('netns')}
    assert {'ovs-vswitchd', 'ovn-controller', 'libvirtd',
            'nova-compute'} <= inside


def test_server_gets_dhcp_address_and_answers_inside_namespace(compute):
    local, _, _, before = compute
    layer = compute_cloud.ComputeLayer(local.layout)
    cstate = layer.state
    conn = bootstrap.admin_connection(local.state)
    image = test_image.build()
    glance_image = conn.image.create_image(
        'trovestack-test-guest', filename=str(image.path), disk_format='raw',
        container_format='bare', wait=True)
    network = conn.network.create_network(
        name=NETWORK, provider_network_type='flat',
        provider_physical_network='mgmt', is_shared=True)
    conn.network.create_subnet(
        network_id=network.id, ip_version=4, cidr=cstate.mgmt_cidr,
        gateway_ip=cstate.gateway)
    flavor = conn.compute.create_flavor(name='trovestack-test-tiny',
                                        ram=256, vcpus=1, disk=1)
    # The default group admits only its own members: let the namespace in.
    group = conn.network.create_security_group(name='trovestack-test-http')
    conn.network.create_security_group_rule(
        security_group_id=group.id, direction='ingress', ethertype='IPv4',
        protocol='tcp', port_range_min=80, port_range_max=80)
    server = conn.compute.create_server(
        name='trovestack-test-guest', image_id=glance_image.id,
        flavor_id=flavor.id, networks=[{'uuid': network.id}],
        security_groups=[{'name': group.name}])
    server = conn.compute.wait_for_server(server, wait=BOOT_TIMEOUT)
    address = server.addresses[NETWORK][0]['addr']
    assert ipaddress.ip_address(address) in ipaddress.ip_network(
        cstate.mgmt_cidr)

    banner = f'{test_image.BANNER} '
    deadline = time.monotonic() + BOOT_TIMEOUT
    console = ''
    while banner + '2: eth0' not in console and time.monotonic() < deadline:
        time.sleep(5)
        console = conn.compute.get_server_console_output(server)['output']
    assert f'inet {address}/' in console, console[-2000:]

    answer = subprocess.run(
        ['ip', 'netns', 'exec', layer.paths.namespace, 'curl', '-s',
         '-m', '20', f'http://{address}/'],
        capture_output=True, text=True)
    assert address in answer.stdout
    # Guest addresses exist only inside the namespace.
    assert _host_addresses() == before

    ports = list(conn.network.ports(device_id=server.id))
    conn.compute.delete_server(server)
    conn.compute.wait_for_delete(server, wait=300)
    assert ports and not list(conn.network.ports(device_id=server.id))
