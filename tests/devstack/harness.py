"""Run the devstack plugin's phases against the local control plane.

``PluginHarness`` calls ``tests/devstack/run-plugin`` (the fake devstack
library plus the plugin) in a subprocess, with devstack's globals pointed
at the running local cloud: Keystone calls, image uploads, datastore
registration, flavors and tempest.conf all happen for real.  What stands in
for a devstack host: the Trove source tree is the installed ``trove``
package, configuration goes to a temporary directory, Trove's own database
is a temporary SQLite file, messaging is oslo.messaging's fake driver and
services run as plain background processes.
"""

import configparser
import os
import pathlib
import socket
import subprocess
import sys

import trove
import yaml

from trovestack.common import ini

REPO = pathlib.Path(__file__).resolve().parents[2]
RUN_PLUGIN = REPO / 'tests' / 'devstack' / 'run-plugin'
BIN = pathlib.Path(sys.executable).parent

# clouds.yaml entries devstack writes, and the local cloud entry behind each
DEVSTACK_CLOUDS = {
    'devstack-admin': 'trovestack-admin',
    'devstack-system-admin': 'trovestack-admin',
    'devstack': 'trovestack-demo',
}


def free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def devstack_clouds_yaml(source, target):
    """Copy clouds.yaml adding devstack's cloud names."""
    data = yaml.safe_load(pathlib.Path(source).read_text())
    clouds = data['clouds']
    for name, origin in DEVSTACK_CLOUDS.items():
        clouds[name] = clouds[origin]
    target.write_text(yaml.safe_dump(data))
    return target


def service_settings(trove_conf):
    """Devstack's service account globals, read from the cloud's trove.conf."""
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(trove_conf)
    auth = parser['keystone_authtoken']
    return {
        'SERVICE_PASSWORD': auth['password'],
        'SERVICE_PROJECT_NAME': auth['project_name'],
        'SERVICE_DOMAIN_NAME': auth.get('user_domain_name', 'Default'),
        'KEYSTONE_SERVICE_URI': auth['auth_url'],
    }


class PluginHarness:
    """Devstack's environment for the plugin, in one state directory."""

    def __init__(self, local_cloud, root, **settings):
        self.root = pathlib.Path(root)
        self.local_cloud = local_cloud
        self.conf_dir = self.root / 'etc' / 'trove'
        self.tempest_conf = self.root / 'tempest' / 'etc' / 'tempest.conf'
        self.tempest_conf.parent.mkdir(parents=True, exist_ok=True)
        self.clouds_yaml = devstack_clouds_yaml(
            local_cloud.clouds_yaml, self.root / 'clouds.yaml')
        self.api_port = free_port()
        self.settings = self._settings()
        self.settings.update(settings)

    def _settings(self):
        trove_package = pathlib.Path(trove.__file__).parent
        settings = {
            'FAKE_DEVSTACK_STATE': str(self.root / 'devstack'),
            'DEST': str(self.root / 'opt'),
            'DATA_DIR': str(self.root / 'data'),
            'PYTHON': sys.executable,
            'FAKE_PYTHON_EXEC_PREFIX': str(BIN),
            'REGION_NAME': 'RegionOne',
            'TEMPEST_CONFIG': str(self.tempest_conf),
            'SERVICE_TIMEOUT': '90',
            # the installed package stands in for a Trove git checkout
            'TROVE_DIR': str(trove_package.parent),
            'TROVE_LOCAL_CONF_DIR': str(pathlib.Path(sys.prefix)
                                        / 'etc' / 'trove'),
            'TROVESTACK_DIR': str(REPO),
            'TROVE_CONF_DIR': str(self.conf_dir),
            'TROVE_SERVICE_HOST': '127.0.0.1',
            'TROVE_SERVICE_LISTEN_ADDRESS': '127.0.0.1',
            'TROVE_SERVICE_PORT': str(self.api_port),
        }
        settings.update(service_settings(
            self.local_cloud.config_file('trove')))
        return settings

    def env(self):
        env = self.local_cloud.env(**self.settings)
        env['OS_CLIENT_CONFIG_FILE'] = str(self.clouds_yaml)
        env['PATH'] = f'{BIN}{os.pathsep}{env.get("PATH", "")}'
        env['FAKE_DEVSTACK_XTRACE'] = '1'
        return env

    def run(self, *args, local_conf=None, check=True, timeout=900):
        command = ['bash', str(RUN_PLUGIN)]
        if local_conf:
            command += ['--local-conf', str(local_conf)]
        result = subprocess.run(command + list(args), env=self.env(),
                                capture_output=True, text=True,
                                timeout=timeout, stdin=subprocess.DEVNULL)
        if check and result.returncode != 0:
            raise AssertionError(
                f'run-plugin {" ".join(args)} exited {result.returncode}\n'
                f'stdout:\n{result.stdout}\nstderr:\n{result.stderr}')
        return result

    def stack(self, post_config=None):
        """The stack.sh phases in order; their combined results.

        ``post_config``: {file name in conf_dir: {section: {option:
        value}}} merged after the post-config phase, before the services
        start, as stack.sh merges local.conf's ``[[post-config|$FILE]]``.
        """
        out = []
        for phase in ('pre-install', 'install', 'post-config', 'extra',
                      'test-config'):
            out.append(self.run('stack', phase))
            if phase == 'post-config':
                for name, sections in (post_config or {}).items():
                    conf = ini.IniFile.load(self.conf_dir / name)
                    conf.update(sections)
                    conf.save(self.conf_dir / name)
        return out

    def pid(self, service):
        pid_file = self.root / 'devstack' / 'status' / f'{service}.pid'
        return int(pid_file.read_text()) if pid_file.exists() else None

    def calls(self):
        log = self.root / 'devstack' / 'calls.log'
        return log.read_text().splitlines() if log.exists() else []
