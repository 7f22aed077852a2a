"""trovestack.common.connection: one-line errors, bounded auth."""

import socket

import pytest
import yaml
from keystoneauth1 import exceptions as ks_exc
from openstack import exceptions as sdk_exc

from trovestack.common import connection


def _wrapped(cause):
    """An SDKException raised while handling ``cause``, as openstacksdk
    does in Connection.authorize()."""
    try:
        try:
            raise cause
        except Exception as exc:
            raise sdk_exc.SDKException(str(exc))  # noqa: B904 - as the SDK
    except sdk_exc.SDKException as outer:
        return outer


@pytest.mark.parametrize('cause, message', [
    (ks_exc.Unauthorized('no'), 'bad credentials'),
    (ks_exc.ConnectFailure('refused'), 'is unreachable'),
    (ks_exc.ConnectTimeout('slow'), 'did not answer in time'),
])
def test_describe_error_finds_the_keystoneauth_cause(cause, message):
    text = connection.describe_error(_wrapped(cause), 'c1')
    assert "cloud 'c1'" in text and message in text
    assert '\n' not in text


def test_missing_auth_url_without_a_cloud_says_how_to_name_one():
    from keystoneauth1 import loading

    options = [opt for opt in loading.get_plugin_options('password')
               if opt.dest == 'auth_url']
    cause = ks_exc.MissingRequiredOptions(options)
    named = connection.describe_error(_wrapped(cause), 'c1')
    assert named == "incomplete credentials for cloud 'c1': missing auth_url"
    unnamed = connection.describe_error(_wrapped(cause))
    assert unnamed.startswith('incomplete credentials for the cloud in OS_* '
                              'variables: missing auth_url; name a cloud')
    assert '--os-cloud' in unnamed and 'trovestack cloud env' in unnamed
    assert '\n' not in unnamed


def test_describe_error_fallback_is_one_line():
    text = connection.describe_error(RuntimeError('first\nsecond'))
    assert text == ('the cloud in OS_* variables: RuntimeError: first')


def test_authentication_is_bounded(tmp_path, monkeypatch):
    silent = socket.socket()
    silent.bind(('127.0.0.1', 0))
    silent.listen(4)
    clouds = tmp_path / 'clouds.yaml'
    clouds.write_text(yaml.safe_dump({'clouds': {'slow': {'auth': {
        'auth_url': f'http://127.0.0.1:{silent.getsockname()[1]}/v3',
        'username': 'u', 'password': 'p', 'project_name': 'p',
        'user_domain_name': 'Default', 'project_domain_name': 'Default'}}}}))
    monkeypatch.setenv('OS_CLIENT_CONFIG_FILE', str(clouds))
    try:
        with pytest.raises(connection.CloudError,
                           match="cloud 'slow' did not answer within 1 s"):
            connection.connect('slow', api_timeout=1)
    finally:
        silent.close()


def test_config_loader_leaves_the_sdk_services_out():
    # A fresh interpreter: this one has openstacksdk imported already.
    import subprocess
    import sys

    code = '''
import sys
from trovestack.common import connection
connection._config_loader()
assert 'openstack.connection' not in sys.modules
assert 'osprofiler.web' not in sys.modules
assert 'netaddr' not in sys.modules
assert 'prometheus_client' not in sys.modules
import netaddr  # importable again
from openstack import exceptions
assert 'openstack.connection' not in sys.modules
import openstack
assert callable(openstack.connect)
assert 'openstack.connection' in sys.modules
assert openstack.config.loader and openstack.exceptions is exceptions
'''
    subprocess.run([sys.executable, '-c', code], check=True)


def test_endpoint_and_ids_without_the_sdk(monkeypatch):
    from unittest import mock

    config = mock.Mock()
    config.get_endpoint.side_effect = \
        lambda service: 'http://override' if service == 'image' else None
    config.get_endpoint_from_catalog.return_value = 'http://catalog'
    conn = connection.Connection(config)
    conn.session.get_project_id.return_value = 'p1'
    conn.session.auth.get_access.return_value.user_id = 'u1'
    monkeypatch.setattr(connection.Connection, 'sdk', property(
        lambda self: pytest.fail('openstacksdk Connection made')))
    assert conn.endpoint_for('image') == 'http://override'
    assert conn.endpoint_for('database') == 'http://catalog'
    config.get_endpoint_from_catalog.assert_called_once_with(
        service_type='database', interface=None, region_name=None)
    assert (conn.current_user_id, conn.current_project_id) == ('u1', 'p1')


@pytest.mark.parametrize('url, versioned', [
    ('http://127.0.0.1:8779/v1.0/%(project_id)s', True),
    ('http://nova:8774/v2.1', True),
    ('http://host/compute/v2.1/', True),
    ('http://127.0.0.1:9292', False),
    ('http://host/image', False),
    ('http://host/vault/', False),
    (None, False),
])
def test_names_version(url, versioned):
    assert connection.names_version(url) is versioned


@pytest.mark.parametrize('override, catalog, discovered, used', [
    # A versioned endpoint (override or catalog) is used as it is.
    ('http://trove/v1.0/%(project_id)s', None, None,
     'http://trove/v1.0/%(project_id)s'),
    (None, 'http://nova/v2.1', None, 'http://nova/v2.1'),
    # A service's root: discovery finds the versioned URL.
    ('http://glance', None, 'http://glance/v2/', 'http://glance/v2/'),
    # The catalog's root: keystoneauth discovers on the first request.
    (None, 'http://glance', None, None),
])
def test_rest_api_discovers_only_unversioned_endpoints(
        override, catalog, discovered, used):
    from unittest import mock

    api = mock.Mock(endpoint_override=override)
    api.get_endpoint_data.return_value.service_url = discovered
    config = mock.Mock()
    config.get_session_client.return_value = api
    config.get_endpoint.return_value = override
    config.get_endpoint_from_catalog.return_value = catalog
    conn = connection.Connection(config)
    assert conn.rest_api('image') is api
    assert api.endpoint_override == used
    assert api.get_endpoint_data.called is (discovered is not None)
    assert conn.rest_api('image') is api


@pytest.mark.parametrize('switch, argument, attached', [
    (None, None, True), ('0', None, False), ('0', True, True),
    (None, False, False),
])
def test_connect_reuses_tokens_unless_turned_off(monkeypatch, switch,
                                                 argument, attached):
    from unittest import mock

    from trovestack.common import tokencache

    config = mock.Mock()
    loader = mock.Mock()
    loader.OpenStackConfig.return_value.get_one.return_value = config
    monkeypatch.setattr(connection, '_config_loader', lambda: loader)
    monkeypatch.setattr(connection.Connection, 'authorize', lambda self: 't')
    attach = mock.Mock()
    monkeypatch.setattr(tokencache, 'attach', attach)
    if switch is None:
        monkeypatch.delenv(tokencache.SWITCH, raising=False)
    else:
        monkeypatch.setenv(tokencache.SWITCH, switch)
    conn = connection.connect('c1', token_cache=argument)
    assert conn.config is config
    assert attach.called is attached
    if attached:
        attach.assert_called_once_with(config.get_auth.return_value)
