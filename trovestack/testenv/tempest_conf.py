"""tempest.conf settings for trove-tempest-plugin, from what Trove has.

Only options that trove-tempest-plugin defines in its ``[database]`` group
are written, plus ``[service_available] trove``; on request also what
tempest needs to reach the cloud (:func:`cloud_settings`). The file is
edited line by line (see ini.py): everything else in it is kept as it was.
"""

import logging
import os
import pathlib
from collections.abc import Iterable
from collections.abc import Sequence

from openstack import exceptions as sdk_exc

from trovestack import testenv
from trovestack.common import connection
from trovestack.common import files
from trovestack.common import ini
from trovestack.common.results import Row
from trovestack.testenv import datastores
from trovestack.testenv import flavors as flavors_mod

LOG = logging.getLogger(__name__)

DATABASE_SECTION = 'database'
# The [database] options this module may write; tests check each one
# against trove_tempest_plugin.config.
DATABASE_OPTIONS = (
    'enabled_datastores',
    'default_datastore_versions',
    'flavor_id',
    'resize_flavor_id',
    'shared_network',
    'volume_type',
    'remove_swift_account',
)
DEFAULT_FLAVOR_ID = 'd3'
# tempest's [service_available] options, by catalog service type.
SERVICES = (('nova', 'compute'), ('glance', 'image'),
            ('neutron', 'network'), ('cinder', 'block-storage'),
            ('swift', 'object-store'))
SECRET = '<hidden>'
DEFAULT_RESIZE_FLAVOR_ID = 'd4'


def derive_settings(
        conn: connection.Connection,
        choices: Sequence[datastores.DatastoreChoice], *,
        flavor_id: str = DEFAULT_FLAVOR_ID,
        resize_flavor_id: str = DEFAULT_RESIZE_FLAVOR_ID,
        flavor_ids: Iterable[str] = (), shared_network: str | None = None,
        volume_type: str | None = None) -> list[tuple[str, str, str]]:
    """[(section, option, value)] for tempest.conf.

    ``choices`` are datastores.DatastoreChoice; ``flavor_ids`` are the ids
    of flavors that exist (or are about to). Network and volume options are
    checked against their services when those are in the catalog and left
    out when they are neither given nor discoverable.
    """
    for option, value in (('flavor_id', flavor_id),
                          ('resize_flavor_id', resize_flavor_id)):
        if value not in flavor_ids:
            raise testenv.TestEnvError(
                f'{option} {value!r} is not a flavor in Nova; '
                f'run "trovestack flavors" or give an existing id')
    resize_flavor_id = fitting_resize_flavor(conn, flavor_id,
                                             resize_flavor_id)
    database = {
        'enabled_datastores': ','.join(c.name for c in choices),
        'default_datastore_versions': ','.join(
            f'{c.name}:{c.version}' for c in choices),
        'flavor_id': flavor_id,
        'resize_flavor_id': resize_flavor_id,
        # Deleting Swift accounts needs ResellerAdmin, which tempest's
        # test users do not get by default.
        'remove_swift_account': 'False',
    }
    network = _shared_network(conn, shared_network)
    if network is not None:
        database['shared_network'] = network
    volume = _volume_type(conn, volume_type)
    if volume:
        database['volume_type'] = volume
    settings = [(DATABASE_SECTION, option, database[option])
                for option in DATABASE_OPTIONS if option in database]
    settings.append(('service_available', 'trove', 'True'))
    return settings


def cloud_settings(conn: connection.Connection) -> list[tuple[str, str, str]]:
    """[(section, option, value)] so that tempest reaches the cloud of
    ``conn`` and makes its test users (dynamic credentials) with that
    account, which must be an admin: [auth], [identity] and every
    [service_available] option tempest reads.  Holds a password."""
    config = conn.config
    auth = config.auth
    missing = [key for key in ('auth_url', 'username', 'password',
                               'project_name') if not auth.get(key)]
    if missing:
        raise testenv.TestEnvError(
            'tempest credentials need a password account; the cloud\'s '
            f'auth lacks {", ".join(missing)}')
    uri = auth['auth_url'].rstrip('/')
    if not uri.endswith('/v3'):
        uri += '/v3'
    settings = [
        ('auth', 'use_dynamic_credentials', 'True'),
        ('auth', 'admin_username', auth['username']),
        ('auth', 'admin_password', auth['password']),
        ('auth', 'admin_project_name', auth['project_name']),
        ('auth', 'admin_domain_name',
         auth.get('user_domain_name') or 'Default'),
        ('identity', 'uri_v3', uri),
        ('identity', 'auth_version', 'v3'),
        ('identity-feature-enabled', 'api_v2', 'False'),
    ]
    if config.region_name:
        settings.append(('identity', 'region', config.region_name))
    settings += [('service_available', name,
                  str(testenv.has_service(conn, service_type)))
                 for name, service_type in SERVICES]
    return settings


def _most_vcpus(conn: connection.Connection) -> int | None:
    """The most vCPUs one server can get on the cloud (Placement's VCPU
    max_unit: a compute host's CPU count), or None when Placement can not
    be asked (no such service, not an administrator)."""
    if not testenv.has_service(conn, 'placement'):
        return None
    try:
        units = [inventory.max_unit
                 for provider in conn.placement.resource_providers()
                 for inventory in
                 conn.placement.resource_provider_inventories(provider)
                 if inventory.resource_class == 'VCPU']
    except sdk_exc.SDKException:
        LOG.debug('Cannot read the VCPU inventories', exc_info=True)
        return None
    return max(units) if units else None


def fitting_resize_flavor(conn: connection.Connection, flavor_id: str,
                          resize_flavor_id: str) -> str:
    """``resize_flavor_id``, unless it has more vCPUs than any compute host
    can give one server (trove-tempest-plugin's d4 has 4: Nova finds no
    host for it on a 2-CPU machine and the resize scenario waits in
    RESIZE); then the smallest flavor with more memory than
    ``flavor_id``, at least its disk, and vCPUs that fit, when there is
    one (a warning says which)."""
    most = _most_vcpus(conn)
    if most is None:
        return resize_flavor_id
    flavors = {flavor.id: flavor
               for flavor in flavors_mod.existing(conn, details=True)}
    wanted, base = flavors.get(resize_flavor_id), flavors.get(flavor_id)
    if wanted is None or base is None or wanted.vcpus <= most:
        return resize_flavor_id
    fitting = [flavor for flavor in flavors.values()
               if flavor.vcpus <= most and flavor.ram > base.ram
               and flavor.disk >= base.disk]
    if not fitting:
        LOG.warning('resize_flavor_id %s has %d vCPUs, more than a compute '
                    'host has (%d), and no flavor fits instead: the resize '
                    'scenario will not find a host', resize_flavor_id,
                    wanted.vcpus, most)
        return resize_flavor_id
    chosen = min(fitting, key=lambda flavor: (
        flavor.ram, flavor.disk, flavor.ephemeral or 0, flavor.vcpus,
        flavor.id))
    LOG.warning('resize_flavor_id %s has %d vCPUs, more than a compute host '
                'has (%d): %s (%s, %d MB, %d vCPUs) instead',
                resize_flavor_id, wanted.vcpus, most, chosen.id, chosen.name,
                chosen.ram, chosen.vcpus)
    return chosen.id


def _shared_network(conn: connection.Connection,
                    name: str | None) -> str | None:
    if not testenv.has_service(conn, 'network'):
        if name:
            LOG.warning('No network service in the catalog; shared_network '
                        '%s is written unchecked', name)
        return name
    if name:
        found = conn.network.find_network(name)
        if found is None:
            raise testenv.TestEnvError(f'network {name!r} does not exist')
        if not found.is_shared:
            raise testenv.TestEnvError(
                f'network {name!r} is not shared: trove-tempest-plugin\'s '
                'test users would not see it')
        return name
    # devstack's tenant network (trove-tempest-plugin's default) when it
    # is shared, as the compute cloud's is.  devstack's own belongs to its
    # demo project, which tempest's test users can not see: an empty value
    # makes trove-tempest-plugin make a network and a router of its own.
    private = conn.network.find_network('private')
    return 'private' if private is not None and private.is_shared else ''


def _volume_type(conn: connection.Connection, name: str | None) -> str | None:
    if not testenv.has_service(conn, 'block-storage'):
        return name
    if name:
        if conn.block_storage.find_type(name) is None:
            raise testenv.TestEnvError(f'volume type {name!r} does not exist')
        return name
    try:
        return conn.block_storage.get_type('default').name
    except sdk_exc.SDKException:
        LOG.debug('No default volume type', exc_info=True)
        return None


def merge(path: pathlib.Path | str, settings: Iterable[tuple[str, str, str]],
          *, dry_run: bool = False) -> list[Row]:
    """Write ``settings`` into the INI file at ``path``; [Row] per option
    (a password's value shown as ``<hidden>``).

    A missing file is created; a missing directory is an error.  A file
    that gets a password is made private (0600).
    """
    testenv.check_directory(path)
    document = ini.IniFile.load(path)
    changes = []
    for section, option, value in settings:
        old = document.get(section, option)
        if old == value:
            action = testenv.UNCHANGED
        else:
            document.set(section, option, value)
            action = testenv.CREATED if old is None else testenv.UPDATED
        if dry_run:
            action = testenv.planned(action)
        changes.append(Row(
            os.path.basename(path), f'[{section}] {option}', action,
            SECRET if _is_secret(option) else value))
    if not dry_run and any(c.action != testenv.UNCHANGED for c in changes):
        LOG.info('Writing %s', path)
        if any(_is_secret(option) for _, option, _ in settings):
            _make_private(path)
        document.save(path)
    return changes


def _is_secret(option: str) -> bool:
    return 'password' in option


def _make_private(path: pathlib.Path | str) -> None:
    """Mode 0600 before a password goes in (saving keeps the mode)."""
    if os.path.exists(path):
        os.chmod(path, 0o600)
    else:
        files.write_atomic(path, '', mode=0o600)
