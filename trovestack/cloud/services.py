"""How each service of the local control plane is set up, run and probed."""

import dataclasses
import getpass
import grp
import os
import pathlib
import sys

from trovestack.cloud import configs
from trovestack.cloud import layout as layout_mod


def _tool(name):
    """A console script installed beside the running Python."""
    return str(pathlib.Path(sys.executable).parent / name)


@dataclasses.dataclass(frozen=True)
class Service:
    name: str
    service_type: str
    wsgi_target: str = ''
    config_env: str = ''

    def url(self, state):
        return f'http://{layout_mod.HOST}:{state.ports[self.name]}/'

    def env(self, layout):
        """Environment variables that point the service at its config."""
        if self.config_env == 'OS_KEYSTONE_CONFIG_FILES':
            return {self.config_env: str(configs.config_file(self.name,
                                                             layout))}
        if self.config_env:
            return {self.config_env: str(layout.config_dir(self.name))}
        return {}

    def command(self, state, layout):
        """The argv of the long-running server process."""
        if self.wsgi_target:
            bind = f'{layout_mod.HOST}:{state.ports[self.name]}'
            return [sys.executable, '-m', 'trovestack.cloud.wsgi_server',
                    self.wsgi_target, bind, str(layout.root)]
        return [_tool('trove-api'), '--config-file',
                str(configs.config_file(self.name, layout))]

    def setup_commands(self, layout):
        """One-time commands that create the service's database etc."""
        conf = str(configs.config_file(self.name, layout))
        if self.name == 'keystone':
            owner = ['--keystone-user', getpass.getuser(),
                     '--keystone-group', grp.getgrgid(os.getgid()).gr_name]
            manage = [_tool('keystone-manage'), '--config-file', conf]
            return [manage + ['db_sync'],
                    manage + ['fernet_setup'] + owner,
                    manage + ['credential_setup'] + owner]
        if self.name == 'glance':
            return [[_tool('glance-manage'), '--config-file', conf,
                     'db_sync']]
        if self.name == 'nova':
            manage = [_tool('nova-manage'), '--config-file', conf]
            return [manage + ['api_db', 'sync'], manage + ['db', 'sync']]
        return [[_tool('trove-manage'), '--config-file', conf, 'db_sync']]


SERVICES = {
    'keystone': Service('keystone', 'identity',
                        'keystone.wsgi.api:application',
                        'OS_KEYSTONE_CONFIG_FILES'),
    'glance': Service('glance', 'image', 'glance.wsgi.api:application',
                      'OS_GLANCE_CONFIG_DIR'),
    'nova': Service('nova', 'compute',
                    'nova.wsgi.osapi_compute:application',
                    'OS_NOVA_CONFIG_DIR'),
    'trove': Service('trove', 'database'),
}
