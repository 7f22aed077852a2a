"""Keystone resources of the local cloud, created the way devstack does.

Every step is find-or-create, so an interrupted bootstrap can be re-run.
openstacksdk (most of a command's start-up) is imported only when a
bootstrap connects: commands that merely import the cloud's modules
(``provision`` with nothing to change) do without it.
"""

from typing import Any

from trovestack.cloud import configs
from trovestack.cloud import layout as layout_mod
from trovestack.cloud.services import CATALOG

INTERFACES = ('public', 'internal', 'admin')
SERVICE_USERS = ('glance', 'nova', 'trove')


def keystone_bootstrap_command(
        state: layout_mod.CloudState) -> tuple[list[str], dict[str, str]]:
    """keystone-manage bootstrap arguments, and its environment (the admin
    password goes through the environment, never the command line)."""
    urls = configs.endpoint_urls(state)
    argv = [
        'bootstrap',
        '--bootstrap-username', 'admin',
        '--bootstrap-project-name', 'admin',
        '--bootstrap-role-name', 'admin',
        '--bootstrap-service-name', 'keystone',
        '--bootstrap-region-id', configs.REGION,
        '--bootstrap-admin-url', urls['identity'],
        '--bootstrap-public-url', urls['identity'],
        '--bootstrap-internal-url', urls['identity'],
    ]
    return argv, {'OS_BOOTSTRAP_PASSWORD': state.admin_password}


def admin_connection(state: layout_mod.CloudState) -> Any:
    import openstack

    return openstack.connect(
        auth_url=configs.identity_url(state), username='admin',
        password=state.admin_password, project_name='admin',
        user_domain_name='Default', project_domain_name='Default',
        region_name=configs.REGION, load_yaml_config=False,
        load_envvars=False, api_timeout=30)


class _Directory:
    """Keystone objects by name, listed once; find-or-create on top."""

    def __init__(self, identity: Any) -> None:
        self.identity = identity
        self.projects = {p.name: p for p in
                         identity.projects(domain_id='default')}
        self.users = {u.name: u for u in identity.users(domain_id='default')}
        self.roles = {r.name: r for r in identity.roles()}

    def project(self, name: str, description: str) -> Any:
        if name not in self.projects:
            self.projects[name] = self.identity.create_project(
                name=name, domain_id='default', description=description)
        return self.projects[name]

    def user(self, name: str, password: str, project: Any) -> Any:
        if name not in self.users:
            self.users[name] = self.identity.create_user(
                name=name, password=password, domain_id='default',
                default_project_id=project.id)
        return self.users[name]

    def grant(self, project: Any, user: Any, role_name: str) -> None:
        self.identity.assign_project_role_to_user(project, user,
                                                  self.roles[role_name])


def _service_with_endpoints(identity: Any, service_type: str,
                            urls: dict[str, str], services: dict[str, Any],
                            endpoints: Any) -> None:
    service = services.get(service_type)
    if service is None:
        service = identity.create_service(
            name=CATALOG[service_type], type=service_type,
            enabled=True)
    existing = {ep.interface: ep for ep in endpoints
                if ep.service_id == service.id}
    for interface in INTERFACES:
        endpoint = existing.get(interface)
        if endpoint is None:
            identity.create_endpoint(service_id=service.id,
                                     interface=interface,
                                     url=urls[service_type],
                                     region_id=configs.REGION)
        elif endpoint.url != urls[service_type]:
            identity.update_endpoint(endpoint, url=urls[service_type])


def create_accounts(state: layout_mod.CloudState) -> str:
    """Projects, users, roles, services and endpoints; safe to repeat."""
    conn = admin_connection(state)
    identity = conn.identity
    names = _Directory(identity)
    admin_project = names.project('admin', 'Bootstrap project')
    service_project = names.project(configs.SERVICE_PROJECT, 'Service users')
    demo_project = names.project('demo', 'Demo project for Trove tests')

    names.grant(demo_project, names.users['admin'], 'admin')
    demo = names.user('demo', state.demo_password, demo_project)
    for role in ('member', 'reader'):
        names.grant(demo_project, demo, role)
    for user_name in SERVICE_USERS:
        user = names.user(user_name, state.service_password, service_project)
        for role in ('admin', 'service'):
            names.grant(service_project, user, role)

    urls = configs.endpoint_urls(state)
    services = {s.type: s for s in identity.services()}
    endpoints = list(identity.endpoints())
    for service_type in CATALOG:
        _service_with_endpoints(identity, service_type, urls, services,
                                endpoints)
    conn.close()
    return admin_project.id
