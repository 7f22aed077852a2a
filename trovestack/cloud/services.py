"""The services of the local control plane: how each is set up, run and
probed.  :data:`SERVICES` is the one list of them."""

import dataclasses
import getpass
import grp
import os
import pathlib
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from trovestack.cloud import configs
from trovestack.cloud import layout as layout_mod

if TYPE_CHECKING:
    from trovestack.cloud import trove_env

HTTP = 'http'        # a server answering HTTP on its port
RPC = 'rpc'          # an oslo.messaging server consuming its topic
BROKER = 'broker'    # RabbitMQ itself (trovestack.cloud.rabbitmq)


def _tool(name: str) -> str:
    """A console script installed beside the running Python."""
    return str(pathlib.Path(sys.executable).parent / name)


@dataclasses.dataclass(frozen=True)
class Service:
    name: str
    kind: str = HTTP
    service_type: str = ''     # its type in the Keystone catalog
    wsgi_target: str = ''      # served by trovestack.cloud.wsgi_server
    console_script: str = ''   # else run as: <script> --config-file <conf>
    config_env: str = ''
    config_of: str = ''        # whose config file it reads (default: own)
    rpc_topic: str = ''        # for RPC services: the queue it consumes
    # Runs Trove's code: from the cloud's Trove tree when it has one
    # (trovestack.cloud.trove_env), else from the venv's release.
    runs_trove: bool = False

    @property
    def has_port(self) -> bool:
        return self.kind in (HTTP, BROKER)

    @property
    def config_owner(self) -> str:
        return self.config_of or self.name

    def url(self, state: layout_mod.CloudState) -> str:
        return f'http://{layout_mod.HOST}:{state.ports[self.name]}/'

    def env(self, layout: layout_mod.Layout) -> dict[str, str]:
        """Environment variables that point the service at its config."""
        if self.config_env == 'OS_KEYSTONE_CONFIG_FILES':
            return {self.config_env: str(configs.config_file(self.name,
                                                             layout))}
        if self.config_env:
            return {self.config_env: str(layout.config_dir(self.name))}
        return {}

    def command(self, state: layout_mod.CloudState, layout: layout_mod.Layout,
                runtime: 'trove_env.Runtime | None' = None) -> list[str]:
        """The argv of the long-running server process; ``runtime``
        (trove_env.Runtime): where a service running Trove's code takes
        its console script from (default: beside this Python)."""
        if self.wsgi_target:
            bind = f'{layout_mod.HOST}:{state.ports[self.name]}'
            return [sys.executable, '-m', 'trovestack.cloud.wsgi_server',
                    self.wsgi_target, bind, str(layout.root)]
        script = (runtime.script(self.console_script)
                  if runtime is not None and self.runs_trove
                  else _tool(self.console_script))
        return [script, '--config-file',
                str(configs.config_file(self.config_owner, layout))]

    def setup_commands(
            self, extra: Sequence[list[str]] = ()) -> list[list[list[str]]]:
        """One-time ``*-manage`` commands (databases, keys, ...), grouped:
        each group runs in one process, its commands and the groups in
        order."""
        if self.kind != HTTP:
            return []
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

    def setup_argv(self, layout: layout_mod.Layout, commands: list[list[str]],
                   runtime: 'trove_env.Runtime | None' = None) -> list[str]:
        """argv running the commands in one process (see manage.py), with
        ``runtime``'s interpreter for a service running Trove's code."""
        words = []
        for command in commands:
            words += ['--', *command]
        python = (runtime.python if runtime is not None and self.runs_trove
                  else sys.executable)
        return [python, '-m', 'trovestack.cloud.manage', self.name,
                str(configs.config_file(self.name, layout)), *words]


# In port order: keystone gets the base port, rabbitmq base + 4.
SERVICES = {
    'keystone': Service('keystone', service_type='identity',
                        wsgi_target='keystone.wsgi.api:application',
                        config_env='OS_KEYSTONE_CONFIG_FILES'),
    'glance': Service('glance', service_type='image',
                      wsgi_target='glance.wsgi.api:application',
                      config_env='OS_GLANCE_CONFIG_DIR'),
    'nova': Service('nova', service_type='compute',
                    wsgi_target='nova.wsgi.osapi_compute:application',
                    config_env='OS_NOVA_CONFIG_DIR'),
    'trove': Service('trove', service_type='database',
                     console_script='trove-api', runs_trove=True),
    'rabbitmq': Service('rabbitmq', kind=BROKER),
    'trove-taskmanager': Service('trove-taskmanager', kind=RPC,
                                 console_script='trove-taskmanager',
                                 config_of='trove', runs_trove=True,
                                 rpc_topic=configs.TASKMANAGER_TOPIC),
    'trove-conductor': Service('trove-conductor', kind=RPC,
                               console_script='trove-conductor',
                               config_of='trove', runs_trove=True,
                               rpc_topic=configs.CONDUCTOR_TOPIC),
}

TROVE_SERVICES = tuple(name for name, service in SERVICES.items()
                       if service.runs_trove)
PORTED = [name for name, service in SERVICES.items() if service.has_port]
CATALOG = {service.service_type: name for name, service in SERVICES.items()
           if service.service_type}
