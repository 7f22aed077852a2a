"""Shared pytest fixtures: the real local control plane.

``local_cloud`` brings up Keystone, Glance, Nova API and Trove API once per
test session in a fresh state directory on free loopback ports, and stops
them afterwards.  Set TROVESTACK_TEST_STATE_DIR to reuse a cloud you keep
running between runs (it is then neither wiped nor stopped).
"""

import os
import pathlib

import openstack
import pytest

from tests import trove_tree
from trovestack.cloud import clouds_yaml
from trovestack.cloud import controlplane
from trovestack.images.datastore import builder as ds_builder
from trovestack.images.guest import builder


class LocalCloudFixture:
    """What integration tests need to know about the running cloud."""

    admin_cloud = clouds_yaml.ADMIN_CLOUD
    demo_cloud = clouds_yaml.DEMO_CLOUD

    def __init__(self, cloud):
        self.cloud = cloud
        self.state_dir = cloud.layout.root
        self.clouds_yaml = cloud.layout.clouds_yaml
        self.state = cloud.state

    def env(self, **extra):
        env = dict(os.environ)
        env.pop('OS_CLOUD', None)
        env['OS_CLIENT_CONFIG_FILE'] = str(self.clouds_yaml)
        env.update(extra)
        return env

    def connection(self, cloud=clouds_yaml.ADMIN_CLOUD):
        config = openstack.config.OpenStackConfig(
            config_files=[str(self.clouds_yaml)], load_envvars=False)
        return openstack.connection.Connection(
            config=config.get_one(cloud=cloud))

    def config_file(self, service):
        """A service's config file (e.g. trove.conf, for trove-manage)."""
        from trovestack.cloud import configs

        return configs.config_file(service, self.cloud.layout)


@pytest.fixture(scope='session', autouse=True)
def isolated_user_config(tmp_path_factory):
    """Keep tests away from the user's ~/.config (clouds.yaml), state and
    hash cache; the image builder keeps its real download caches."""
    home = tmp_path_factory.mktemp('xdg')
    names = ('XDG_CONFIG_HOME', 'XDG_STATE_HOME', 'XDG_CACHE_HOME',
             'TROVE_IMAGE_BUILDER_CACHE', 'TROVESTACK_DATASTORE_IMAGE_CACHE',
             trove_tree.SDIST_CACHE_ENV)
    saved = {k: os.environ.get(k) for k in names}
    # The trove sdist tools/install-test-deps cached: test trees come from it.
    os.environ.setdefault(trove_tree.SDIST_CACHE_ENV,
                          str(trove_tree.sdist_dir()))
    os.environ.setdefault('TROVE_IMAGE_BUILDER_CACHE',
                          str(builder.default_cache_dir()))
    # Datastore images are build products keyed by their inputs' hash, like
    # guest images: shared between test sessions, not rebuilt per session.
    os.environ.setdefault('TROVESTACK_DATASTORE_IMAGE_CACHE',
                          str(ds_builder.default_output_dir()))
    os.environ['XDG_CONFIG_HOME'] = str(home / 'config')
    os.environ['XDG_STATE_HOME'] = str(home / 'state')
    os.environ['XDG_CACHE_HOME'] = str(home / 'cache')
    yield home
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope='session')
def local_cloud(tmp_path_factory, isolated_user_config):
    reuse = os.environ.get('TROVESTACK_TEST_STATE_DIR')
    if reuse:
        cloud = controlplane.LocalCloud(pathlib.Path(reuse))
        cloud.up(base_port=0)
        yield LocalCloudFixture(cloud)
        return
    state_dir = tmp_path_factory.mktemp('cloud')
    cloud = controlplane.LocalCloud(state_dir)
    try:
        cloud.up(base_port=0,
                 clouds_yaml_path=state_dir / 'clouds.yaml')
        yield LocalCloudFixture(cloud)
    finally:
        cloud.down()
