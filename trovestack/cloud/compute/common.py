"""Configuration pieces shared by the compute layer's OpenStack services."""

import pathlib
import sys
from typing import Any

from trovestack.cloud import configs
from trovestack.cloud import layout as layout_mod
from trovestack.cloud import processes
from trovestack.cloud import supervision
from trovestack.cloud.compute import paths as paths_mod
from trovestack.common import ini

# A command line; paths as they are (str() makes them arguments).
Command = list[str | pathlib.Path]


def tool(name: str) -> str:
    """A console script installed beside the running Python."""
    return str(pathlib.Path(sys.executable).parent / name)


def write_config(path: pathlib.Path,
                 sections: dict[str, dict[str, Any]]) -> pathlib.Path:
    layout_mod.write_private(path, ini.render(sections))
    return path


def service_auth(state: layout_mod.CloudState,
                 user: str = 'nova') -> dict[str, str]:
    """keystoneauth password options of a service user."""
    return {
        'auth_type': 'password',
        'auth_url': configs.identity_url(state),
        'username': user,
        'password': state.service_password,
        'project_name': configs.SERVICE_PROJECT,
        'user_domain_name': 'Default',
        'project_domain_name': 'Default',
        'region_name': configs.REGION,
    }


def authtoken(state: layout_mod.CloudState, user: str) -> dict[str, str]:
    return {**service_auth(state, user),
            'www_authenticate_uri': configs.identity_url(state),
            'service_token_roles_required': 'true'}


def url(port: int, path: str = '') -> str:
    return f'http://{layout_mod.HOST}:{port}{path}'


def wsgi_daemon(name: str, target: str, port: int,
                paths: paths_mod.ComputePaths,
                env: dict[str, str]) -> supervision.Program:
    """A WSGI application under gunicorn on host loopback."""
    bind = f'{layout_mod.HOST}:{port}'
    return supervision.Program(
        name, [sys.executable, '-m', 'trovestack.cloud.wsgi_server', target,
               bind, str(paths.root)],
        None, lambda: processes.http_answers(url(port)), env)
