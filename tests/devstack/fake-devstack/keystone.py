"""Keystone for the fake devstack library: devstack's idempotent helpers
(get_or_create_service, get_or_create_endpoint, create_service_user), one
process per helper through openstacksdk instead of one ``openstack``
client start per step; same calls against Keystone, same output.

    keystone.py service NAME TYPE DESCRIPTION       print the service's id
    keystone.py endpoint SERVICE REGION INTERFACE=URL...
                                                    print the first one's id
    keystone.py user NAME DOMAIN PROJECT PDOMAIN ROLE...
                                                    print the user's id

The user's password comes from FAKE_KEYSTONE_PASSWORD (never argv).
"""

import os
import sys

import openstack


def _service(conn, name, service_type, description):
    found = [s for s in conn.identity.services()
             if service_type in (s.type, s.name) or s.id == service_type]
    if found:
        return found[0].id
    return conn.identity.create_service(
        name=name, type=service_type, description=description).id


def _endpoint(conn, service_id, region, *pairs):
    ids = []
    for pair in pairs:
        interface, _, url = pair.partition('=')
        found = list(conn.identity.endpoints(
            service_id=service_id, interface=interface, region_id=region))
        ids.append(found[0].id if found else conn.identity.create_endpoint(
            service_id=service_id, interface=interface, url=url,
            region_id=region).id)
    return ids[0]


def _user(conn, name, domain, project, project_domain, *roles):
    domain_id = conn.identity.find_domain(domain).id
    user = conn.identity.find_user(name, domain_id=domain_id)
    if user is None and not os.environ.get('FAKE_KEYSTONE_PASSWORD'):
        sys.exit(f'user {name} does not exist')
    if user is None:
        user = conn.identity.create_user(
            name=name, domain_id=domain_id,
            password=os.environ['FAKE_KEYSTONE_PASSWORD'])
    project = conn.identity.find_project(
        project, domain_id=conn.identity.find_domain(project_domain).id)
    for role in roles:
        conn.identity.assign_project_role_to_user(
            project, user, conn.identity.find_role(role))
    return user.id


ACTIONS = {'service': _service, 'endpoint': _endpoint, 'user': _user}


def main(argv):
    conn = openstack.connect(cloud=os.environ.get(
        'SYSTEM_ADMIN_CLOUD', 'devstack-system-admin'))
    print(ACTIONS[argv[0]](conn, *argv[1:]))
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
