"""clouds.yaml entries for the local cloud, merged into existing files."""

import pathlib
from collections.abc import Iterable
from typing import Any

import yaml

from trovestack.cloud import configs
from trovestack.cloud import layout as layout_mod

ADMIN_CLOUD = 'trovestack-admin'
DEMO_CLOUD = 'trovestack-demo'


def entries(state: layout_mod.CloudState) -> dict[str, dict[str, Any]]:
    """The two clouds: admin (admin project) and demo (demo project)."""
    def cloud(user: str, password: str, project: str) -> dict[str, Any]:
        return {
            'auth': {
                'auth_url': configs.identity_url(state),
                'username': user,
                'password': password,
                'project_name': project,
                'user_domain_name': 'Default',
                'project_domain_name': 'Default',
            },
            'region_name': configs.REGION,
            'interface': 'public',
            'identity_api_version': 3,
        }

    return {
        ADMIN_CLOUD: cloud('admin', state.admin_password, 'admin'),
        DEMO_CLOUD: cloud('demo', state.demo_password, 'demo'),
    }


def merge_into(path: pathlib.Path | str,
               clouds: dict[str, dict[str, Any]]) -> None:
    """Put clouds into the clouds.yaml at path, keeping every other cloud."""
    path = pathlib.Path(path)
    data: dict[str, Any] = {}
    if path.exists():
        data = yaml.safe_load(path.read_text()) or {}
    data.setdefault('clouds', {}).update(clouds)
    layout_mod.write_private(path, yaml.safe_dump(data, sort_keys=True))


def remove_from(path: pathlib.Path | str, names: Iterable[str]) -> None:
    """Take our clouds out of the clouds.yaml at path, if they are there."""
    path = pathlib.Path(path)
    if not path.exists():
        return
    data = yaml.safe_load(path.read_text()) or {}
    clouds = data.get('clouds', {})
    if not any(name in clouds for name in names):
        return
    for name in names:
        clouds.pop(name, None)
    layout_mod.write_private(path, yaml.safe_dump(data, sort_keys=True))
