"""The Trove management calls of datastore versions, over the run's session.

python-troveclient imports openstacksdk's every service, keystoneclient,
mistralclient and oauthlib: most of the start-up of a run that changes
nothing (benchmarks/bench_load_image.py).  The four calls load_image makes
need none of that: :func:`mgmt_client` answers them through a keystoneauth
adapter on the connection's own session (its token, no new login).  The
records it returns have the attributes of troveclient's DatastoreVersion,
and a refused request raises the same troveclient exception (that module
alone is cheap), so callers handle both clients alike.  The configuration
parameters of a version are listed here too; changing them still goes
through troveclient (only when something changes).
"""

import types
from collections.abc import Iterable
from typing import Any

from trovestack.common import connection

VERSIONS = '/mgmt/datastore-versions'


class MgmtClient:
    """What datastores.py uses of a troveclient v1 Client."""

    def __init__(self, adapter: Any) -> None:
        self.mgmt_ds_versions = DatastoreVersions(adapter)
        self._adapter = adapter

    def parameters(self, version_id: str) -> list[types.SimpleNamespace]:
        """A version's configuration parameters (as troveclient's
        list_all_parameter_by_version)."""
        return [_record(item) for item in _call(
            self._adapter, 'GET',
            f'/mgmt/datastores/versions/{version_id}/parameters')[
                'configuration-parameters']]


class DatastoreVersions:
    """troveclient's MgmtDatastoreVersions list/get/create/edit.

    A list is kept until this client changes something (or tries to), so
    that registering a version and then making it the default ask Trove
    once when nothing changes.
    """

    def __init__(self, adapter: Any) -> None:
        self._adapter = adapter
        self._listed: list[dict[str, Any]] | None = None

    def list(self) -> list[types.SimpleNamespace]:
        if self._listed is None:
            self._listed = _call(self._adapter, 'GET', VERSIONS)['versions']
        return [_record(item) for item in self._listed]

    def get(self, version_id: str) -> types.SimpleNamespace:
        return _record(_call(self._adapter, 'GET',
                             f'{VERSIONS}/{version_id}')['version'])

    def create(self, name: str, datastore_name: str, datastore_manager: str,
               image: str, *, packages: Iterable[str] = (),
               active: str = 'true', default: str = 'false',
               image_tags: Iterable[str] = (),
               version: str | None = None) -> None:
        body = {'name': name, 'datastore_name': datastore_name,
                'datastore_manager': datastore_manager,
                'image_tags': list(image_tags), 'packages': list(packages),
                'active': _flag(active), 'default': _flag(default)}
        if image:
            body['image'] = image
        if version:
            body['version'] = version
        self._listed = None
        _call(self._adapter, 'POST', VERSIONS, {'version': body})

    def edit(self, version_id: str, *, datastore_manager: str | None = None,
             image: str | None = None, packages: Iterable[str] | None = None,
             active: str | None = None, default: str | None = None,
             image_tags: Iterable[str] | None = None) -> None:
        # As troveclient: an empty package list is not sent.
        body = {'datastore_manager': datastore_manager, 'image': image,
                'packages': packages or None, 'active': _flag(active),
                'default': _flag(default), 'image_tags': image_tags}
        self._listed = None
        _call(self._adapter, 'PATCH', f'{VERSIONS}/{version_id}',
              {key: value for key, value in body.items()
               if value is not None})


class DatastoreClient:
    """What testenv.datastores.choose() reads of a troveclient v1 Client:
    ``datastores.list()`` and ``datastore_versions.list(datastore_id)``."""

    def __init__(self, adapter: Any) -> None:
        self.datastores = types.SimpleNamespace(
            list=lambda: [_record(item) for item in
                          _call(adapter, 'GET', '/datastores')['datastores']])
        self.datastore_versions = types.SimpleNamespace(
            list=lambda datastore_id: [
                _record(item) for item in _call(
                    adapter, 'GET',
                    f'/datastores/{datastore_id}/versions')['versions']])


def mgmt_client(conn: connection.Connection) -> MgmtClient:
    """A MgmtClient on ``conn``'s session: its adapter of the database
    service (connection.rest_api: region, interface, endpoint override and
    version discovery as the cloud config has them)."""
    return MgmtClient(connection.rest_api(conn, 'database'))


def datastore_client(conn: connection.Connection) -> 'DatastoreClient':
    """A DatastoreClient on ``conn``'s session, as mgmt_client()."""
    return DatastoreClient(connection.rest_api(conn, 'database'))


def _flag(value: str | None) -> bool | None:
    """'true'/'false' (troveclient's arguments) as JSON booleans."""
    return None if value is None else value == 'true'


def _record(data: dict[str, Any]) -> types.SimpleNamespace:
    return types.SimpleNamespace(**data)


def _call(adapter: Any, method: str, url: str,
          body: dict[str, Any] | None = None) -> Any:
    """The JSON answer; troveclient's exception for a 4xx/5xx answer."""
    response = adapter.request(
        url, method, json=body, raise_exc=False,
        headers={'Accept': 'application/json'})
    if response.status_code >= 400:
        from troveclient import exceptions

        raise exceptions.from_response(response, method, url)
    if not response.content:
        return {}
    return response.json()
