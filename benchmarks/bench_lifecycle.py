#!/usr/bin/env python3
"""The compute cloud's lifecycle: cold start, a server to ACTIVE, delete.

Starts a fresh cloud with ``--compute`` semantics (control plane, then
placement, neutron/OVN, libvirt and nova in the cloud's namespace), boots
the tiny test guest (tests/tiny_guest.py) on a flat
management network, times server create -> ACTIVE and -> DHCP address on
the console, delete, then the whole cloud's down and warm start, and
prints the resident memory of the whole cloud with that one guest
running.  With ``--trove-image`` (a guest image with
mariadb:11.8 embedded) it then provisions Trove on the cloud and times a
MariaDB instance through tests/integration/lifecycle_support.py: create ->
ACTIVE, database/user, delete, and the memory with that guest; then two
instances at once (as trove-tempest-plugin's backup and replication
scenarios run them: primary and restore, primary and replica), and the
memory with both ACTIVE.  Root only; wipes its cloud at the end.

    .venv/bin/python benchmarks/bench_lifecycle.py [--trove-image IMAGE]
"""

import argparse
import concurrent.futures
import os
import pathlib
import sys
import tempfile
import time

import psutil

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from tests import tiny_guest  # noqa: E402
from trovestack.cloud import bootstrap
from trovestack.cloud import controlplane
from trovestack.cloud import rabbitmq
from trovestack.cloud.compute import cloud as compute_cloud
from trovestack.trove import instances

NETWORK = 'bench-mgmt'


def _timed(func, *args, **kwargs):
    start = time.perf_counter()
    result = func(*args, **kwargs)
    return time.perf_counter() - start, result


def _control_plane_rss_kib(local):
    names = [*local._names(local.state), rabbitmq.EPMD]
    return sum(local.supervisor.rss_kib(name) for name in names)


def _boot(conn, cstate, image_path):
    image = conn.image.create_image(
        'bench-guest', filename=str(image_path), disk_format='raw',
        container_format='bare', wait=True)
    network = conn.network.create_network(
        name=NETWORK, provider_network_type='flat',
        provider_physical_network='mgmt', is_shared=True)
    conn.network.create_subnet(network_id=network.id, ip_version=4,
                               cidr=cstate.mgmt_cidr,
                               gateway_ip=cstate.gateway)
    flavor = conn.compute.create_flavor(name='bench-tiny', ram=256,
                                        vcpus=1, disk=1)
    return image, network, flavor


def _trove_instance(local, layer, trove_image):
    """Provision mariadb:11.8 and run one instance's lifecycle; (timeline,
    memory KiB with the guest ACTIVE)."""
    from tests.integration import lifecycle_support
    from trovestack.orchestration import provision

    provision.provision(provision.ProvisionRequest(
        datastores=[('mariadb', '11.8')], image=trove_image,
        state_dir=str(local.layout.root),
        tempest_conf=str(local.layout.root / 'tempest.conf')))
    conn = bootstrap.admin_connection(local.state)
    memory = []
    where = lifecycle_support.Where(
        conn=conn, namespace=layer.paths.namespace,
        instances_dir=str(layer.paths.instances_dir))

    def progress(text):
        print(text, file=sys.stderr)
        if 'status ACTIVE' in text:
            memory.append(layer.memory_kib() + _control_plane_rss_kib(local))
    timeline = lifecycle_support.run_lifecycle(
        where, datastore='mariadb', version='11.8',
        flavor='d3', volume_size=1, progress=progress)
    return timeline, (memory or [0])[0], _two_guests(local, layer)


def _two_guests(local, layer):
    """Two MariaDB instances created at once; (seconds until both are
    ACTIVE, the cloud's memory KiB and the host's available memory KiB
    with both running)."""
    names = ('bench-first', 'bench-second')

    def one(name):
        return instances.ensure_instance(
            bootstrap.admin_connection(local.state), name,
            datastore='mariadb', version='11.8', flavor='d3', volume_size=1)
    start = time.perf_counter()
    try:
        with concurrent.futures.ThreadPoolExecutor(len(names)) as pool:
            list(pool.map(one, names))
        both = time.perf_counter() - start
        return (both, layer.memory_kib() + _control_plane_rss_kib(local),
                psutil.virtual_memory().available // 1024)
    finally:
        conn = bootstrap.admin_connection(local.state)
        for name in names:
            instances.delete_instance(conn, name)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--trove-image')
    args = parser.parse_args()
    image = tiny_guest.build()
    trove = None
    with tempfile.TemporaryDirectory() as tmp:
        local = controlplane.LocalCloud(pathlib.Path(tmp) / 'state')
        layer = compute_cloud.ComputeLayer(local.layout)
        try:
            cold, _ = _timed(compute_cloud.up_with_control_plane, local,
                             base_port=0,
                             clouds_yaml_path=pathlib.Path(tmp) / 'c.yaml')
            conn = bootstrap.admin_connection(local.state)
            glance_image, network, flavor = _boot(conn, layer.state,
                                                  image.path)
            start = time.perf_counter()
            server = conn.compute.create_server(
                name='bench-guest', image_id=glance_image.id,
                flavor_id=flavor.id, networks=[{'uuid': network.id}])
            server = conn.compute.wait_for_server(server, wait=900)
            active = time.perf_counter() - start
            while (tiny_guest.BANNER + ' 2: eth0') not in \
                    conn.compute.get_server_console_output(server)['output']:
                time.sleep(2)
            dhcp = time.perf_counter() - start
            memory = layer.memory_kib() + _control_plane_rss_kib(local)
            deleted, _ = _timed(_delete, conn, server)
            conn.network.delete_network(network)
            down, _ = _timed(compute_cloud.down_with_control_plane, local)
            warm, _ = _timed(compute_cloud.up_with_control_plane, local)
            if args.trove_image:
                environ = dict(os.environ)
                trove = _trove_instance(local, layer, args.trove_image)
                os.environ.clear()
                os.environ.update(environ)
        finally:
            layer.wipe()
            local.wipe()
    print(f'compute cloud cold start (control plane + compute): {cold:.1f} s')
    print(f'compute cloud down: {down:.1f} s; warm start after it: '
          f'{warm:.1f} s')
    print(f'server create -> ACTIVE: {active:.1f} s; -> DHCP address on '
          f'its console: {dhcp:.1f} s (tiny busybox guest)')
    print(f'server delete: {deleted:.1f} s')
    print(f'resident memory of the whole cloud with one guest: '
          f'{memory / 1024:.0f} MiB')
    if trove:
        timeline, trove_memory, (both, two_memory, available) = trove
        for stage, seconds in timeline.items():
            print(f'trove instance (mariadb 11.8): {stage}: {seconds:.1f} s')
        print(f'resident memory of the whole cloud with one ACTIVE Trove '
              f'guest: {trove_memory / 1024:.0f} MiB')
        print(f'two trove instances created at once: both ACTIVE after '
              f'{both:.1f} s; resident memory of the whole cloud with both: '
              f'{two_memory / 1024:.0f} MiB, host memory still available: '
              f'{available / 1024:.0f} MiB')


def _delete(conn, server):
    conn.compute.delete_server(server)
    conn.compute.wait_for_delete(server, wait=300)


if __name__ == '__main__':
    main()
