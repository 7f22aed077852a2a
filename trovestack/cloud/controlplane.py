"""The local control plane: Keystone, Glance, Nova API and Trove API.

All four run on loopback from one state directory, on SQLite with fake
messaging.  ``up`` bootstraps once and afterwards only restarts.
"""

import concurrent.futures
import logging
import shutil
import time

from trovestack.cloud import bootstrap
from trovestack.cloud import clouds_yaml
from trovestack.cloud import configs
from trovestack.cloud import layout as layout_mod
from trovestack.cloud import processes
from trovestack.cloud.services import SERVICES

LOG = logging.getLogger(__name__)
START_TIMEOUT = 120.0


class CloudError(Exception):
    """The local cloud could not be brought to the asked state."""


class LocalCloud:
    def __init__(self, state_dir=None):
        self.layout = layout_mod.Layout(
            state_dir or layout_mod.default_state_dir())

    @property
    def state(self):
        return self.layout.load_state()

    # ----------------------------------------------------------------- up
    def up(self, base_port=layout_mod.DEFAULT_BASE_PORT, clouds_yaml_path=None,
           fresh=False, timeout=START_TIMEOUT):
        """Start every service, bootstrapping first if needed."""
        if fresh:
            self.wipe()
        state = self.layout.load_state()
        if state is None:
            target = clouds_yaml_path or layout_mod.default_clouds_yaml()
            state = layout_mod.CloudState.new(base_port, target)
        elif clouds_yaml_path:
            state.clouds_yaml = str(clouds_yaml_path)
        to_start = [name for name in SERVICES if self._pid(name) is None]
        self._check_ports(state, to_start)

        self.layout.make_dirs()
        self.layout.save_state(state)
        configs.write_configs(state, self.layout)
        if not state.bootstrapped:
            LOG.info('Creating the service databases in %s', self.layout.root)
        self._start(state, to_start, timeout)
        if not state.bootstrapped:
            LOG.info('Creating projects, users and the service catalog')
            began = time.monotonic()
            bootstrap.create_accounts(state)
            LOG.debug('accounts and catalog created in %.1f s',
                      time.monotonic() - began)
            state.bootstrapped = True
            self.layout.save_state(state)
        self._write_clouds_yaml(state)
        return self.status()

    def _check_ports(self, state, names):
        for name in names:
            port = state.ports[name]
            if not layout_mod.port_is_free(port):
                raise CloudError(
                    f'port {port} ({name}) on {layout_mod.HOST} is in use; '
                    f'stop what listens there or start a fresh cloud with '
                    f'another --base-port')

    def _set_up_service(self, service, state):
        log = self.layout.root / 'logs' / f'{service.name}-setup.log'
        extra, env = (), service.env(self.layout)
        if service.name == 'keystone':
            command, password_env = bootstrap.keystone_bootstrap_command(
                state)
            extra, env = [command], {**env, **password_env}
        for commands in service.setup_commands(extra):
            processes.run_checked(
                service.setup_argv(self.layout, commands), log, env,
                what=f'{service.name}-manage '
                     f'{", ".join(command[0] for command in commands)}')

    def _start(self, state, names, timeout):
        """Set up (first time only), start and await services in parallel.

        On any failure every service started here is stopped again.
        """
        def bring_up(name, _state):
            service = SERVICES[name]
            began = time.monotonic()
            if not _state.bootstrapped:
                self._set_up_service(service, _state)
            set_up = time.monotonic()
            pid = processes.start(service.command(_state, self.layout),
                                  self.layout.pid_file(name),
                                  self.layout.log_file(name),
                                  service.env(self.layout))
            processes.wait_until_ready(name, pid, service.url(_state),
                                       self.layout.log_file(name), timeout)
            LOG.debug('%s: set up in %.1f s, answering %.1f s later', name,
                      set_up - began, time.monotonic() - set_up)
        try:
            self._run_parallel(bring_up, names, state)
        except BaseException:
            for name in names:
                processes.stop(self.layout.pid_file(name), self.layout.root)
            raise

    @staticmethod
    def _run_parallel(func, items, state):
        items = list(items)
        with concurrent.futures.ThreadPoolExecutor(len(items) or 1) as pool:
            futures = [pool.submit(func, item, state) for item in items]
            errors = [f.exception() for f in futures if f.exception()]
        if errors:
            raise CloudError(str(errors[0])) from errors[0]

    def _write_clouds_yaml(self, state):
        entries = clouds_yaml.entries(state)
        clouds_yaml.merge_into(self.layout.clouds_yaml, entries)
        if state.clouds_yaml != str(self.layout.clouds_yaml):
            clouds_yaml.merge_into(state.clouds_yaml, entries)

    # ---------------------------------------------------------- down/status
    def _pid(self, name):
        return processes.read_pid(self.layout.pid_file(name), self.layout.root)

    def down(self):
        """Stop the services this state directory started; (name, was_up)."""
        return [(name, processes.stop(self.layout.pid_file(name),
                                      self.layout.root))
                for name in SERVICES]

    def status(self):
        """One row per service: name, state, pid, url."""
        state = self.layout.load_state()
        rows = []
        for name, service in SERVICES.items():
            pid = self._pid(name)
            url = service.url(state) if state else ''
            if pid is None:
                condition = 'stopped'
            elif processes.http_answers(url):
                condition = 'running'
            else:
                condition = 'not answering'
            rows.append((name, condition, pid or '', url))
        return rows

    def wipe(self):
        """Stop everything and remove the state and our clouds.yaml entries."""
        self.down()
        state = self.layout.load_state()
        if state is not None:
            clouds_yaml.remove_from(state.clouds_yaml,
                                    list(clouds_yaml.entries(state)))
        shutil.rmtree(self.layout.root, ignore_errors=True)

    def env(self, cloud=clouds_yaml.ADMIN_CLOUD):
        """OS_* variables that select this cloud (no secrets in them)."""
        return {'OS_CLIENT_CONFIG_FILE': str(self.layout.clouds_yaml),
                'OS_CLOUD': cloud}
