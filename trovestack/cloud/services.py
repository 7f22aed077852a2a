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

    def setup_commands(self, extra=()):
        """One-time ``*-manage`` commands (databases, keys, ...), grouped:
        each group runs in one process, its commands and the groups in
        order."""
        if self.name == 'keystone':
            owner = ['--keystone-user', getpass.getuser(),
                     '--keystone-group', grp.getgrgid(os.getgid()).gr_name]
            return [[['db_sync'], ['fernet_setup', *owner],
                     ['credential_setup', *owner], *extra]]
        if self.name == 'nova':
            # The API database first (db sync reads its cell mappings); nova
            # cannot sync both in one process (its engine facade starts
            # once).
            return [[['api_db', 'sync']], [['db', 'sync']]]
        return [[['db_sync']]]

    def setup_argv(self, layout, commands):
        """argv running the commands in one process (see manage.py)."""
        words = []
        for command in commands:
            words += ['--', *command]
        return [sys.executable, '-m', 'trovestack.cloud.manage', self.name,
                str(configs.config_file(self.name, layout)), *words]


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
