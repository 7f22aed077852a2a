"""Trove run by the devstack plugin on the compute cloud.

The plugin's stack phases (tests/devstack/harness.py) against the compute
cloud: Trove's services then run with nothing but what the plugin wrote, on
the cloud's broker and at the catalog's Trove address, while the cloud's
own Trove services are stopped; afterwards the plugin unstacks and the
cloud's services come back.  The plugin's Trove keeps its database on the
cloud's MariaDB server, as devstack's does on MySQL (Trove's eventlet
services on one SQLite file end in "database is locked" under load).  The
management network is the cloud's flat
provider network with the gateway the namespace holds, where guests reach
RabbitMQ.
"""

import contextlib
import os
import shutil

from tests.devstack import harness as harness_mod
from trovestack.cloud.compute import mariadb
from trovestack.cloud.compute import paths as compute_paths
from trovestack.trove import compute_trove


def settings(compute_cloud, image, datastores, backups=False):
    """The plugin's local.conf values for an embedded-image stack on the
    compute cloud, Trove instances on Ceph volumes.  The plugin's Trove
    keeps its own database: it registers the datastores (``name:version``
    each) itself.  ``backups``: the plugin builds the backup images and
    pushes them to the cloud's registry, which guests reach on the
    gateway."""
    cloud, cstate = compute_cloud.cloud, compute_cloud.cstate
    extra = {}
    if backups:
        addresses = compute_trove.guest_registry(cloud)
        assert addresses, 'the compute cloud runs no registry'
        extra = dict(TROVE_BACKUP_IMAGE_SOURCE='registry',
                     TROVE_DATASTORE_REGISTRY_PUSH=addresses[0],
                     TROVE_DATASTORE_REGISTRY=addresses[1])
    return dict(**extra,
        TROVE_DATASTORES=','.join(datastores),
        TROVE_GUEST_IMAGE=str(image), TROVE_GUEST_OS='debian',
        TROVE_GUEST_RELEASE='bookworm',
        # The version's configuration parameters from Trove's templates:
        # trove-tempest-plugin's scenario makes a configuration group.
        TROVE_LOAD_CONFIG_PARAMS='True',
        TROVE_DATASTORE_IMAGE_SOURCE='embedded',
        TROVE_VOLUME_SUPPORT='True', TROVE_MGMT_HOST_PORT='',
        TROVE_MGMT_NETWORK_NAME=compute_trove.NETWORK,
        TROVE_MGMT_SUBNET_RANGE=cstate.mgmt_cidr,
        TROVE_MGMT_PHYSICAL_NETWORK=compute_paths.PHYSICAL_NETWORK,
        TROVE_MGMT_GATEWAY=cstate.gateway, TROVE_MGMT_NETWORK_SHARED='True',
        # The cloud's management key: its guests' evidence is read over
        # SSH with it (trovestack gate-tests on a failure).
        # (made here when no provision on this cloud made it first)
        TROVE_MGMT_PUBLIC_KEY=str(compute_trove.public_key_file(
            cloud.layout)),
        TROVE_SERVICE_PORT=str(cloud.state.ports['trove']),
        FAKE_TRANSPORT_URL=cloud.broker.transport_url(),
        FAKE_MYSQL_SOCKET=str(mariadb.socket_path(compute_cloud.layer.paths)))


@contextlib.contextmanager
def plugin_trove(compute_cloud, root, image, datastores, tempest_conf=None,
                 backups=False):
    """The harness after its stack phases, Trove run by it meanwhile.

    ``tempest_conf``: a tempest.conf to start from (the plugin's
    test-config phase adds its [database] values to it, as on devstack,
    where tempest's own setup writes the rest).  ``backups``: backup
    images in the cloud's registry (:func:`settings`) and, as a devstack
    user's local.conf would add in post-config sections, the object
    storage URL guests reach (devstack's Swift is on an address guests
    reach; the compute cloud's catalog is on loopback).
    """
    cloud = compute_cloud.cloud
    plugin = harness_mod.PluginHarness(
        compute_cloud, root,
        **settings(compute_cloud, image, datastores, backups=backups))
    if tempest_conf is not None:
        shutil.copyfile(tempest_conf, plugin.tempest_conf)
        os.chmod(plugin.tempest_conf, 0o600)
    for name in compute_trove.TROVE_SERVICES:
        cloud.supervisor.stop(name)
    try:
        plugin.stack(post_config=compute_trove.object_storage_options(
            cloud) if backups else None)
        yield plugin
    finally:
        plugin.run('unstack', check=False)
        cloud.restart(compute_trove.TROVE_SERVICES)


def service_logs(plugin):
    """The plugin's Trove API, task manager and conductor logs."""
    logs = plugin.root / 'devstack' / 'logs'
    return logs / 'tr-api.log', logs / 'tr-tmgr.log', logs / 'tr-cond.log'
