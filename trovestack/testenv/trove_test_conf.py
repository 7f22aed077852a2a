"""The JSON test configuration read by Trove's in-tree test helpers.

Redstack's ``test-init`` filled templates into ``/etc/trove/test.conf``.
The reader is ``trove.tests.config.TestConfig.load_from_file`` (JSON, keys
become ``CONFIG.<key>``); the proboscis integration tests that used it
were removed from Trove in 2024, so this file is for out-of-tree and
older-branch tests. It is written from live data only, with mode 0600
because user entries carry the password from clouds.yaml; nothing here
logs or prints it.
"""

import json
import logging
import re
import urllib.parse
from collections.abc import Iterable
from typing import Any

from trovestack import testenv
from trovestack.common import connection
from trovestack.common import files
from trovestack.common.results import Row
from trovestack.testenv import datastores

LOG = logging.getLogger(__name__)

# Flavor roles of the old test config and the flavor names they pointed to.
FLAVOR_ROLES = (
    ('instance_flavor_name', 'test.small-7'),
    ('instance_bigger_flavor_name', 'test.small-7.resize'),
    ('instance_eph_flavor_name', 'test.eph.small-7'),
    ('instance_bigger_eph_flavor_name', 'test.eph.small-7.resize'),
    ('instance_fault_1_flavor_name', 'test.fault_1-1'),
    ('instance_fault_1_eph_flavor_name', 'test.eph.fault_1-1'),
    ('instance_fault_2_flavor_name', 'test.fault_2-7'),
    ('instance_fault_2_eph_flavor_name', 'test.eph.fault_2-7'),
)


def user_entry(conn: connection.Connection) -> dict[str, Any]:
    """A ``users`` item for the user a connection authenticated as."""
    config_auth = conn.config.get_auth_args()
    entry = {
        'auth_user': config_auth.get('username') or conn.current_user_id,
        'tenant': config_auth.get('project_name') or conn.current_project_id,
        'tenant_id': conn.current_project_id,
        'requirements': {
            'is_admin': connection.has_admin_role(conn),
            'services': sorted(
                service for service in ('trove', 'nova', 'glance', 'swift')
                if testenv.has_service(conn, _SERVICE_TYPES[service])),
        },
    }
    if config_auth.get('password'):
        entry['auth_key'] = config_auth['password']
    return entry


_SERVICE_TYPES = {'trove': 'database', 'nova': 'compute',
                  'glance': 'image', 'swift': 'object-store'}


def _api_urls(conn: connection.Connection) -> tuple[str, str]:
    """(dbaas_url, version_url) from the database endpoint in the catalog.

    The catalog URL ends in ``/v1.0/<project id>``; the test config wants
    the URL up to the API version and the one above it.
    """
    endpoint = conn.endpoint_for('database')
    if not endpoint:
        raise testenv.TestEnvError(
            'no database (Trove) endpoint in the catalog')
    parts = urllib.parse.urlsplit(endpoint)
    segments = [s for s in parts.path.split('/') if s]
    version = next((i for i, s in enumerate(segments)
                    if re.fullmatch(r'v\d+(\.\d+)?', s)), len(segments))

    def url(path_segments: Iterable[str]) -> str:
        return urllib.parse.urlunsplit(
            (parts.scheme, parts.netloc, '/'.join(['', *path_segments]),
             '', ''))

    return url(segments[:version + 1]), url(segments[:version])


def build(conn: connection.Connection, choice: datastores.DatastoreChoice, *,
          user_conns: Iterable[connection.Connection] = (),
          flavor_names: Iterable[str] = ()) -> dict[str, Any]:
    """The test configuration as a dict.

    ``choice`` is the datastores.DatastoreChoice under test; ``user_conns``
    are connections of further test users (the admin ``conn`` comes first).
    """
    dbaas_url, version_url = _api_urls(conn)
    auth_url = conn.config.get_auth_args().get('auth_url', '').rstrip('/')
    values = {
        'dbaas_url': dbaas_url,
        'version_url': version_url,
        'auth_url': auth_url,
        'trove_auth_url': f'{auth_url}/auth/tokens',
        'trove_client_insecure': not conn.config.config.get('verify', True),
        'trove_client_region_name': conn.config.get_region_name() or '',
        'users': [user_entry(c) for c in (conn, *user_conns)],
        'dbaas_datastore': choice.name,
        'dbaas_datastore_id': choice.id,
        'dbaas_datastore_version': choice.version,
        'dbaas_datastore_version_id': choice.version_id,
        'dbaas_image': choice.image_id or None,
        'swift_enabled': testenv.has_service(conn, 'object-store'),
        'trove_volume_support': testenv.has_service(conn, 'block-storage'),
        'trove_volume_size': 1,
    }
    names = set(flavor_names)
    values.update((role, name) for role, name in FLAVOR_ROLES
                  if name in names)
    if testenv.has_service(conn, 'network'):
        network = conn.network.find_network('private')
        if network is not None:
            values['shared_network'] = network.id
    return values


def write(path: str, values: dict[str, Any], *,
          dry_run: bool = False) -> Row:
    """Write ``values`` as JSON to ``path`` (0600); returns one Row."""
    testenv.check_directory(path)
    text = json.dumps(values, indent=4, sort_keys=True) + '\n'
    try:
        with open(path, encoding='utf-8') as stream:
            action = (testenv.UNCHANGED if stream.read() == text
                      else testenv.UPDATED)
    except FileNotFoundError:
        action = testenv.CREATED
    if dry_run:
        return Row('trove-test-conf', path, testenv.planned(action), 'json')
    if action != testenv.UNCHANGED:
        LOG.info('Writing %s', path)
        files.write_atomic(path, text, mode=0o600)
    return Row('trove-test-conf', path, action, 'json')
