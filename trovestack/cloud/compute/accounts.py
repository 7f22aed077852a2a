"""Keystone users, services and endpoints of placement, neutron, cinder
and object storage."""

from typing import Any

from trovestack.cloud import bootstrap
from trovestack.cloud import configs
from trovestack.cloud import layout as layout_mod

INTERFACES = ('public', 'internal', 'admin')
SERVICES = {'placement': 'placement', 'network': 'neutron',
            'volumev3': 'cinder', 'object-store': 'swift'}


def create(state: layout_mod.CloudState, urls: dict[str, str]) -> None:
    """Find-or-create the service users (admin + service roles in the
    service project) and catalog entries; urls: {service type: url}."""
    conn = bootstrap.admin_connection(state)
    try:
        identity = conn.identity
        project = identity.find_project(configs.SERVICE_PROJECT,
                                        domain_id='default',
                                        ignore_missing=False)
        roles = {role.name: role for role in identity.roles()}
        for service_type, name in SERVICES.items():
            user = identity.find_user(name, domain_id='default')
            if user is None:
                user = identity.create_user(
                    name=name, password=state.service_password,
                    domain_id='default', default_project_id=project.id)
            for role in ('admin', 'service'):
                identity.assign_project_role_to_user(project, user,
                                                     roles[role])
            _catalog_entry(identity, service_type, name, urls[service_type])
    finally:
        conn.close()


def _catalog_entry(identity: Any, service_type: str, name: str,
                   url: str) -> None:
    service = next(iter(identity.services(type=service_type)), None)
    if service is None:
        service = identity.create_service(name=name, type=service_type,
                                          enabled=True)
    existing = {endpoint.interface: endpoint for endpoint in
                identity.endpoints(service_id=service.id)}
    for interface in INTERFACES:
        endpoint = existing.get(interface)
        if endpoint is None:
            identity.create_endpoint(service_id=service.id,
                                     interface=interface, url=url,
                                     region_id=configs.REGION)
        elif endpoint.url != url:
            identity.update_endpoint(endpoint, url=url)
