"""Configuration files of the local control plane's services.

Every service runs on SQLite, listens on loopback and validates tokens
against the local Keystone.  Trove's and Nova's services talk over the
cloud's RabbitMQ (``transport_url``); Keystone and Glance send no
notifications here and keep ``fake:/``.
"""

import pathlib
import shutil
import sys
from typing import Any

from trovestack.cloud import layout as layout_mod
from trovestack.common import ini as ini_mod

SERVICE_PROJECT = 'service'
REGION = 'RegionOne'
# Trove's RPC exchange and the queues its taskmanager and conductor consume
# (Trove's defaults, spelled out because the health checks look for them).
CONTROL_EXCHANGE = 'trove'
TASKMANAGER_TOPIC = 'taskmanager'
CONDUCTOR_TOPIC = 'trove-conductor'


def identity_url(state: layout_mod.CloudState) -> str:
    return f'http://{layout_mod.HOST}:{state.ports["keystone"]}/v3'


def local_cloud_at(
        auth_url: str | None, state_dir: pathlib.Path | str | None = None,
) -> layout_mod.Layout | None:
    """The Layout of the local cloud of ``state_dir`` (default: the default
    state directory) when ``auth_url`` is its identity endpoint, else
    None: how every tool tells the local cloud from another, however the
    cloud was named (--os-cloud, OS_CLOUD, ``cloud env``)."""
    if not auth_url:
        return None
    layout = layout_mod.Layout(state_dir or layout_mod.default_state_dir())
    try:
        state = layout.load_state()
    except (OSError, ValueError, TypeError):
        return None
    if state is None or 'keystone' not in state.ports:
        return None
    if auth_url.rstrip('/') != identity_url(state).rstrip('/'):
        return None
    return layout


def endpoint_urls(state: layout_mod.CloudState) -> dict[str, str]:
    """Catalog URL of each service, by service type."""
    host = layout_mod.HOST
    ports = state.ports
    return {
        'identity': identity_url(state),
        'image': f'http://{host}:{ports["glance"]}',
        'compute': f'http://{host}:{ports["nova"]}/v2.1',
        'database': f'http://{host}:{ports["trove"]}/v1.0/$(tenant_id)s',
    }


def _sqlite(path: pathlib.Path) -> str:
    return f'sqlite:///{pathlib.Path(path).absolute()}'


def _shipped_etc(project: str, name: str) -> pathlib.Path:
    """A file the service's package installs under <prefix>/etc/<project>."""
    return pathlib.Path(sys.prefix) / 'etc' / project / name


def _authtoken(state: layout_mod.CloudState, user: str) -> dict[str, str]:
    return {
        'www_authenticate_uri': identity_url(state),
        'auth_url': identity_url(state),
        'auth_type': 'password',
        'username': user,
        'password': state.service_password,
        'project_name': SERVICE_PROJECT,
        'user_domain_name': 'Default',
        'project_domain_name': 'Default',
        'region_name': REGION,
        'service_token_roles_required': 'true',
    }


def _common(service: str, layout: layout_mod.Layout,
            transport_url: str = 'fake:/') -> dict[str, str]:
    return {
        'debug': 'false',
        'use_stderr': 'true',
        'transport_url': transport_url,
        'state_path': str(layout.service_dir(service)),
    }


def _rabbit() -> dict[str, str]:
    """Reconnect every second while the broker starts beside the service."""
    return {'rabbit_retry_interval': '1', 'rabbit_retry_backoff': '0'}


def keystone_conf(state: layout_mod.CloudState, layout: layout_mod.Layout,
                  transport_url: str) -> dict[str, dict[str, Any]]:
    data = layout.service_dir('keystone')
    return {
        'DEFAULT': _common('keystone', layout),
        'database': {'connection': _sqlite(data / 'keystone.db')},
        'token': {'provider': 'fernet', 'expiration': '14400'},
        'fernet_tokens': {'key_repository': str(data / 'fernet-keys')},
        'fernet_receipts': {'key_repository': str(data / 'fernet-keys')},
        'credential': {'key_repository': str(data / 'credential-keys')},
        'identity': {'password_hash_rounds': '4'},
    }


def glance_conf(state: layout_mod.CloudState, layout: layout_mod.Layout,
                transport_url: str) -> dict[str, dict[str, Any]]:
    data = layout.service_dir('glance')
    return {
        'DEFAULT': dict(_common('glance', layout),
                        enabled_backends='local:file',
                        show_image_direct_url='false',
                        worker_self_reference_url=endpoint_urls(
                            state)['image']),
        'glance_store': {'default_backend': 'local'},
        'local': {'filesystem_store_datadir': str(data / 'images')},
        'os_glance_staging_store': {
            'filesystem_store_datadir': str(data / 'staging')},
        'os_glance_tasks_store': {
            'filesystem_store_datadir': str(data / 'tasks')},
        'database': {'connection': _sqlite(data / 'glance.db')},
        'keystone_authtoken': _authtoken(state, 'glance'),
        'paste_deploy': {
            'flavor': 'keystone',
            'config_file': str(layout.config_dir('glance')
                               / 'glance-api-paste.ini')},
        'oslo_concurrency': {'lock_path': str(data / 'locks')},
    }


def nova_conf(state: layout_mod.CloudState, layout: layout_mod.Layout,
              transport_url: str) -> dict[str, dict[str, Any]]:
    data = layout.service_dir('nova')
    return {
        'DEFAULT': dict(_common('nova', layout, transport_url),
                        my_ip=layout_mod.HOST),
        'oslo_messaging_rabbit': _rabbit(),
        'api': {'auth_strategy': 'keystone'},
        'api_database': {'connection': _sqlite(data / 'nova_api.db')},
        'database': {'connection': _sqlite(data / 'nova.db')},
        'keystone_authtoken': _authtoken(state, 'nova'),
        'wsgi': {'api_paste_config': str(layout.config_dir('nova')
                                         / 'api-paste.ini')},
        'oslo_concurrency': {'lock_path': str(data / 'locks')},
        'placement': {'auth_type': 'none'},
    }


def trove_conf(state: layout_mod.CloudState, layout: layout_mod.Layout,
               transport_url: str) -> dict[str, dict[str, Any]]:
    data = layout.service_dir('trove')
    service_credentials = {
        key: value for key, value in _authtoken(state, 'trove').items()
        if key in ('auth_url', 'username', 'password', 'project_name',
                   'user_domain_name', 'project_domain_name', 'region_name')}
    return {
        'DEFAULT': dict(
            _common('trove', layout, transport_url),
            bind_host=layout_mod.HOST,
            bind_port=str(state.ports['trove']),
            trove_api_workers='1',
            trove_conductor_workers='1',
            api_paste_config=str(layout.config_dir('trove')
                                 / 'api-paste.ini'),
            control_exchange=CONTROL_EXCHANGE,
            taskmanager_queue=TASKMANAGER_TOPIC,
            conductor_queue=CONDUCTOR_TOPIC,
            taskmanager_manager='trove.taskmanager.manager.Manager',
            os_region_name=REGION),
        'oslo_messaging_rabbit': _rabbit(),
        'database': {'connection': _sqlite(data / 'trove.db')},
        'keystone_authtoken': _authtoken(state, 'trove'),
        'service_credentials': service_credentials,
        'oslo_concurrency': {'lock_path': str(data / 'locks')},
    }


RENDERERS = {
    'keystone': ('keystone.conf', keystone_conf),
    'glance': ('glance-api.conf', glance_conf),
    'nova': ('nova.conf', nova_conf),
    'trove': ('trove.conf', trove_conf),
}

PASTE_FILES = {
    'glance': ('glance', 'glance-api-paste.ini'),
    'nova': ('nova', 'api-paste.ini'),
    'trove': ('trove', 'api-paste.ini'),
}


def config_file(service: str, layout: layout_mod.Layout) -> pathlib.Path:
    return layout.config_dir(service) / RENDERERS[service][0]


def write_configs(state: layout_mod.CloudState, layout: layout_mod.Layout,
                  transport_url: str) -> None:
    """Write every service's options from the saved state and the
    broker's transport_url into its config file.

    Options the cloud does not render stay: what ``provision`` sets for
    Trove's instances on the compute cloud (management network, keypair,
    timeouts...), what the compute layer adds to nova-api's, so a cloud
    started again runs with them.
    """
    for service, (name, render) in RENDERERS.items():
        path = layout.config_dir(service) / name
        document = ini_mod.IniFile.load(path)
        if document.update(render(state, layout, transport_url)) or \
                not path.exists():
            layout_mod.write_private(path, document.text())
        if service in PASTE_FILES:
            project, paste = PASTE_FILES[service]
            shutil.copyfile(_shipped_etc(project, paste),
                            layout.config_dir(service) / paste)
