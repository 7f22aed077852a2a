"""Trove's Swift client on the compute cloud: its own calls on the
catalog's (loopback) URL, whatever swift_url tells guests."""

import types

from trove.common import cfg

from trovestack.cloud.compute import trove_swift

# As keystonemiddleware hands it to Trove (a v2 catalog).
CATALOG = [{'type': 'object-store', 'name': 'swift', 'endpoints': [
    {'region': 'RegionOne',
     'publicURL': 'http://127.0.0.1:7480/swift/v1/AUTH_p1'}]}]


def test_trove_calls_object_storage_on_the_catalogs_url():
    cfg.CONF.set_override('swift_url',
                          'http://10.222.0.1:7480/swift/v1/AUTH_')
    try:
        context = types.SimpleNamespace(service_catalog=CATALOG,
                                        auth_token='token',
                                        project_id='p1')
        client = trove_swift.swift_client(context, region_name='RegionOne')
    finally:
        cfg.CONF.clear_override('swift_url')
    assert client.url == 'http://127.0.0.1:7480/swift/v1/AUTH_p1'
    assert client.token == 'token'
