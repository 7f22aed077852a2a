"""Keystone resources of the local cloud, created the way devstack does.

Every step is find-or-create, so an interrupted bootstrap can be re-run.
"""

import openstack

from trovestack.cloud import configs

INTERFACES = ('public', 'internal', 'admin')
SERVICE_USERS = {'glance': 'image', 'nova': 'compute', 'trove': 'database'}
SERVICE_NAMES = {'identity': 'keystone', 'image': 'glance',
                 'compute': 'nova', 'database': 'trove'}


def keystone_bootstrap_command(manage_argv, state):
    """keystone-manage bootstrap argv and env (password via environment)."""
    urls = configs.endpoint_urls(state)
    argv = manage_argv + [
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


def admin_connection(state):
    return openstack.connect(
        auth_url=configs.identity_url(state), username='admin',
        password=state.admin_password, project_name='admin',
        user_domain_name='Default', project_domain_name='Default',
        region_name=configs.REGION, load_yaml_config=False,
        load_envvars=False, api_timeout=30)


def _project(identity, name, description):
    return identity.find_project(name, domain_id='default') or \
        identity.create_project(name=name, domain_id='default',
                                description=description)


def _user(identity, name, password, project):
    user = identity.find_user(name, domain_id='default')
    if user is None:
        return identity.create_user(name=name, password=password,
                                    domain_id='default',
                                    default_project_id=project.id)
    return identity.update_user(user, password=password)


def _grant(identity, project, user, role_name):
    role = identity.find_role(role_name, ignore_missing=False)
    identity.assign_project_role_to_user(project, user, role)


def _service_with_endpoints(identity, service_type, urls):
    name = SERVICE_NAMES[service_type]
    service = next(iter(identity.services(type=service_type)), None)
    if service is None:
        service = identity.create_service(name=name, type=service_type,
                                          enabled=True)
    existing = {ep.interface: ep for ep in
                identity.endpoints(service_id=service.id)}
    for interface in INTERFACES:
        endpoint = existing.get(interface)
        if endpoint is None:
            identity.create_endpoint(service_id=service.id,
                                     interface=interface,
                                     url=urls[service_type],
                                     region_id=configs.REGION)
        elif endpoint.url != urls[service_type]:
            identity.update_endpoint(endpoint, url=urls[service_type])


def create_accounts(state):
    """Projects, users, roles, services and endpoints; safe to repeat."""
    conn = admin_connection(state)
    identity = conn.identity
    admin_project = _project(identity, 'admin', 'Bootstrap project')
    service_project = _project(identity, configs.SERVICE_PROJECT,
                               'Service users')
    demo_project = _project(identity, 'demo', 'Demo project for Trove tests')

    admin = identity.find_user('admin', domain_id='default',
                               ignore_missing=False)
    _grant(identity, demo_project, admin, 'admin')
    demo = _user(identity, 'demo', state.demo_password, demo_project)
    for role in ('member', 'reader'):
        _grant(identity, demo_project, demo, role)
    for user_name in SERVICE_USERS:
        user = _user(identity, user_name, state.service_password,
                     service_project)
        for role in ('admin', 'service'):
            _grant(identity, service_project, user, role)

    urls = configs.endpoint_urls(state)
    for service_type in SERVICE_NAMES:
        _service_with_endpoints(identity, service_type, urls)
    conn.close()
    return admin_project.id
