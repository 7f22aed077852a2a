"""Stand-ins for openstacksdk connections in testenv unit tests."""

import types
from unittest import mock

from keystoneauth1 import exceptions as ks_exc


def connection(services=('compute', 'database', 'image', 'identity')):
    """A mock Connection whose catalog holds ``services``."""
    conn = mock.MagicMock(name='conn')

    def get_endpoint(service_type, **kwargs):
        if service_type in services:
            return f'http://cloud/{service_type}'
        raise ks_exc.EndpointNotFound(service_type)

    conn.session.get_endpoint.side_effect = get_endpoint
    conn.compute.get_endpoint_data.return_value = None  # no microversions
    conn.current_project_id = 'project-1'
    return conn


def flavor(name, flavor_id, ram, disk, vcpus, ephemeral=0, extra_specs=None):
    return types.SimpleNamespace(name=name, id=flavor_id, ram=ram, disk=disk,
                                 vcpus=vcpus, ephemeral=ephemeral,
                                 extra_specs=extra_specs or {})


def from_spec(spec, **changes):
    values = dict(name=spec.name, flavor_id=spec.id, ram=spec.ram,
                  disk=spec.disk, vcpus=spec.vcpus, ephemeral=spec.ephemeral,
                  extra_specs=dict(spec.extra_specs))
    values.update(changes)
    return flavor(**values)
