"""Configuration pieces shared by the compute layer's OpenStack services."""

import pathlib
import sys

from trovestack.cloud import configs
from trovestack.cloud import layout as layout_mod
from trovestack.cloud import processes
from trovestack.cloud import supervision
from trovestack.common import ini


def tool(name) -> str:
    """A console script installed beside the running Python."""
    return str(pathlib.Path(sys.executable).parent / name)


def write_config(path, sections):
    layout_mod.write_private(path, ini.render(sections))
    return path


def service_auth(state, user='nova') -> dict:
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


def authtoken(state, user) -> dict:
    return {**service_auth(state, user),
            'www_authenticate_uri': configs.identity_url(state),
            'service_token_roles_required': 'true'}


def url(port, path='') -> str:
    return f'http://{layout_mod.HOST}:{port}{path}'


def wsgi_daemon(name, target, port, paths, env) -> supervision.Program:
    """A WSGI application under gunicorn on host loopback."""
    bind = f'{layout_mod.HOST}:{port}'
    return supervision.Program(
        name, [sys.executable, '-m', 'trovestack.cloud.wsgi_server', target,
               bind, str(paths.root)],
        None, lambda: processes.http_answers(url(port)), env)
