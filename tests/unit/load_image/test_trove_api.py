"""Unit tests of load_image.trove_api: the requests it sends, its errors."""

from json import dumps as _dumps

import pytest
import requests
from troveclient import exceptions as trove_exc

from load_image import datastores
from load_image import trove_api

VERSION = {'id': 'v1', 'name': '8.4', 'version': '8.4',
           'datastore_name': 'mysql', 'datastore_id': 'd1',
           'datastore_manager': 'mysql', 'image': 'img-1',
           'image_tags': [], 'packages': [], 'active': True,
           'default': False}


class _Adapter:
    """Records requests; answers from a queue of (status, body)."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.sent = []

    def request(self, url, method, json=None, **kwargs):  # noqa: A002
        self.sent.append((method, url, json))
        status, body = self.answers.pop(0)
        response = requests.Response()
        response.status_code = status
        response.headers['Content-Type'] = 'application/json'
        response._content = b'' if body is None else \
            _dumps(body).encode()
        return response


def test_list_is_kept_until_a_change():
    adapter = _Adapter((200, {'versions': [VERSION]}), (202, None),
                       (200, {'versions': [VERSION]}))
    versions = trove_api.DatastoreVersions(adapter)
    assert versions.list()[0].image == 'img-1'
    assert versions.list()[0].datastore_name == 'mysql'
    versions.edit('v1', image='img-2', active='true', packages=[])
    versions.list()
    assert [(m, u) for m, u, _ in adapter.sent] == [
        ('GET', '/mgmt/datastore-versions'),
        ('PATCH', '/mgmt/datastore-versions/v1'),
        ('GET', '/mgmt/datastore-versions')]
    # As troveclient: flags as JSON booleans, no empty package list.
    assert adapter.sent[1][2] == {'image': 'img-2', 'active': True}


def test_create_body():
    adapter = _Adapter((202, None))
    trove_api.DatastoreVersions(adapter).create(
        '8.4', 'mysql', 'mysql', 'img-1', packages=['p'], active='true',
        default='false', image_tags=['t'], version='8.4.1')
    assert adapter.sent == [('POST', '/mgmt/datastore-versions', {
        'version': {'name': '8.4', 'datastore_name': 'mysql',
                    'datastore_manager': 'mysql', 'image': 'img-1',
                    'image_tags': ['t'], 'packages': ['p'], 'active': True,
                    'default': False, 'version': '8.4.1'}})]


@pytest.mark.parametrize('status, message', [
    (403, 'needs the admin role'),
    (400, 'Trove refused the request: bad image'),
])
def test_refusals_are_troveclient_errors(status, message):
    adapter = _Adapter((status, {'badRequest': {'message': 'bad  image',
                                                'code': status}}))
    versions = trove_api.DatastoreVersions(adapter)
    with pytest.raises(trove_exc.ClientException):
        versions.get('v1')
    adapter.answers.append((status, {'e': {'message': 'bad  image'}}))
    with pytest.raises(datastores.DatastoreError, match=message):
        datastores._mgmt_call(versions.get, 'v1')


def test_register_then_default_list_once():
    made_default = dict(VERSION, default=True)
    adapter = _Adapter((200, {'versions': [VERSION]}), (202, None),
                       (200, {'version': made_default}))
    trove = trove_api.MgmtClient(adapter)
    result = datastores.register_version(
        trove, datastore='mysql', version='8.4', manager='mysql',
        image_id='img-1')
    assert result.action == 'unchanged'
    default = datastores.set_default_version(trove, 'mysql', '8.4')
    assert (default.action, default.default) == ('updated', True)
    assert [(m, u) for m, u, _ in adapter.sent] == [
        ('GET', '/mgmt/datastore-versions'),
        ('PATCH', '/mgmt/datastore-versions/v1'),
        ('GET', '/mgmt/datastore-versions/v1')]


def test_datastore_client_reads_what_choose_asks():
    adapter = _Adapter(
        (200, {'datastores': [{'id': 'd1', 'name': 'mysql',
                               'default_version': 'v1'}]}),
        (200, {'versions': [VERSION]}))
    client = trove_api.DatastoreClient(adapter)
    assert client.datastores.list()[0].default_version == 'v1'
    assert client.datastore_versions.list('d1')[0].image == 'img-1'
    assert [(m, u) for m, u, _ in adapter.sent] == [
        ('GET', '/datastores'), ('GET', '/datastores/d1/versions')]
