"""The local control plane: RabbitMQ, Keystone, Glance, Nova API, Trove API,
trove-taskmanager and trove-conductor (and, when asked, a container
registry).

All run on loopback from one state directory, on SQLite; Trove's and Nova's
services talk over the cloud's own RabbitMQ.  ``up`` bootstraps once and
afterwards only restarts; the broker starts beside the other services.
"""

import concurrent.futures
import logging
import shutil
import threading
import time

from trovestack.cloud import LocalCloudError
from trovestack.cloud import bootstrap
from trovestack.cloud import clouds_yaml
from trovestack.cloud import configs
from trovestack.cloud import layout as layout_mod
from trovestack.cloud import processes
from trovestack.cloud import rabbitmq
from trovestack.cloud.services import BROKER
from trovestack.cloud.services import HTTP
from trovestack.cloud.services import PORTED
from trovestack.cloud.services import RPC
from trovestack.cloud.services import SERVICES

LOG = logging.getLogger(__name__)
START_TIMEOUT = 120.0
REGISTRY = 'registry'
BROKER_USER = BROKER_VHOST = 'trovestack'


class _Aborted(Exception):
    """Another service failed first; this one gave up waiting."""


class LocalCloud:
    def __init__(self, state_dir=None):
        self.layout = layout_mod.Layout(
            state_dir or layout_mod.default_state_dir())
        self.broker_dir = self.layout.service_dir('rabbitmq')
        self.registry_dir = self.layout.service_dir(REGISTRY)

    @property
    def state(self):
        return self.layout.load_state()

    @property
    def broker(self):
        """The cloud's RabbitMQ (running or not), or None before up."""
        return rabbitmq.load(self.broker_dir)

    # ----------------------------------------------------------------- up
    def up(self, base_port=layout_mod.DEFAULT_BASE_PORT, clouds_yaml_path=None,
           fresh=False, timeout=START_TIMEOUT, registry=None):
        """Start every service, bootstrapping first if needed.

        ``registry``: True/False turns the container registry on/off for
        this and later runs; None keeps what the cloud had.
        """
        if fresh:
            self.wipe()
        state = self.layout.load_state()
        if state is None:
            target = clouds_yaml_path or layout_mod.default_clouds_yaml()
            state = layout_mod.CloudState.new(base_port, target, PORTED)
        elif clouds_yaml_path:
            state.clouds_yaml = str(clouds_yaml_path)
        if registry is not None:
            if not registry and state.registry:
                self._stop_registry()
            state.registry = registry
        state.add_ports(self._port_names(state))
        to_start = [name for name in self._names(state)
                    if not self._is_up(name)]
        self._check_ports(state, to_start)

        self.layout.make_dirs(name for name, service in SERVICES.items()
                              if service.kind == HTTP)
        self.layout.save_state(state)
        broker = rabbitmq.configure(
            self.broker_dir, layout_mod.HOST, state.ports['rabbitmq'],
            user=BROKER_USER, vhost=BROKER_VHOST)
        configs.write_configs(state, self.layout, broker.transport_url())
        if not state.bootstrapped:
            LOG.info('Creating the service databases in %s', self.layout.root)
        self._start(state, to_start, timeout, broker)
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

    @staticmethod
    def _names(state):
        """Every process of this cloud: the services, then the registry
        when it is enabled."""
        return [*SERVICES, *([REGISTRY] if state.registry else [])]

    @staticmethod
    def _port_names(state):
        return [*PORTED, *([REGISTRY] if state.registry else [])]

    def _check_ports(self, state, names):
        for name in names:
            port = state.ports.get(name)
            if port and not processes.port_is_free(port, layout_mod.HOST):
                raise LocalCloudError(
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

    def _start(self, state, names, timeout, broker):
        """Set up (first time only), start and await services in parallel.

        RabbitMQ starts beside the others; taskmanager and conductor start
        once Trove's database exists and count as up when they consume
        their RPC topics.  On any failure everything started here is
        stopped again.
        """
        abort = threading.Event()
        broker_up = threading.Event()
        trove_db = threading.Event()
        if 'rabbitmq' not in names:
            broker_up.set()
        if state.bootstrapped or 'trove' not in names:
            trove_db.set()

        def wait_for(event):
            while not event.wait(0.2):
                if abort.is_set():
                    raise _Aborted()

        def bring_up(name):
            began = time.monotonic()
            if name == REGISTRY:
                self._start_registry(state, timeout)
                return
            service = SERVICES[name]
            if service.kind == BROKER:
                rabbitmq.start(self.broker_dir, broker.host, broker.port,
                               user=broker.user, vhost=broker.vhost,
                               timeout=timeout)
                broker_up.set()
                LOG.debug('rabbitmq: answering after %.1f s',
                          time.monotonic() - began)
                return
            if service.kind == RPC:
                wait_for(trove_db)
            elif not state.bootstrapped:
                self._set_up_service(service, state)
            if name == 'trove':
                trove_db.set()
            set_up = time.monotonic()
            pid = self._spawn(state, service)
            if service.kind == RPC:
                wait_for(broker_up)
            self._await(state, service, pid, broker, timeout)
            LOG.debug('%s: set up in %.1f s, answering %.1f s later', name,
                      set_up - began, time.monotonic() - set_up)

        def guarded(name):
            try:
                bring_up(name)
            except BaseException:
                abort.set()
                raise

        try:
            self._run_parallel(guarded, names)
        except BaseException:
            self._stop(names)
            raise

    def _spawn(self, state, service):
        """Start one service's process; its pid."""
        return processes.start(service.command(state, self.layout),
                               self.layout.pid_file(service.name),
                               self.layout.log_file(service.name),
                               service.env(self.layout))

    def _await(self, state, service, pid, broker, timeout):
        """Wait until the service answers (HTTP) or consumes its RPC
        topic; LocalCloudError (with its log's tail) when it does not."""
        log = self.layout.log_file(service.name)
        if service.kind == RPC:
            processes.wait_until(
                service.name, pid, lambda: self._consuming(broker, service),
                log, timeout, f'consume RPC topic {service.rpc_topic}')
        else:
            processes.wait_until_ready(service.name, pid, service.url(state),
                                       log, timeout)

    def restart(self, names, timeout=120.0):
        """Restart running services (after their configuration changed),
        one after the other, each awaited as at start."""
        state, broker = self.state, self.broker
        for name in names:
            service = SERVICES[name]
            processes.stop(self.layout.pid_file(name), self.layout.root)
            self._await(state, service, self._spawn(state, service), broker,
                        timeout)

    @staticmethod
    def _consuming(broker, service):
        try:
            counts = rabbitmq.queue_consumers(broker, [service.rpc_topic])
        except rabbitmq.BrokerError:
            return False
        return bool(counts[service.rpc_topic])

    @staticmethod
    def _run_parallel(func, items):
        items = list(items)
        with concurrent.futures.ThreadPoolExecutor(len(items) or 1) as pool:
            futures = [pool.submit(func, item) for item in items]
            errors = [f.exception() for f in futures if f.exception()]
        errors.sort(key=lambda error: isinstance(error, _Aborted))
        if errors:
            if isinstance(errors[0], LocalCloudError):
                raise errors[0]
            raise LocalCloudError(str(errors[0])) from errors[0]

    def _start_registry(self, state, timeout):
        from trovestack import registry

        registry.start(self.registry_dir, layout_mod.HOST,
                       state.ports[REGISTRY], timeout=timeout)

    def _stop_registry(self):
        from trovestack import registry

        return registry.stop(self.registry_dir)

    def _write_clouds_yaml(self, state):
        entries = clouds_yaml.entries(state)
        clouds_yaml.merge_into(self.layout.clouds_yaml, entries)
        if state.clouds_yaml != str(self.layout.clouds_yaml):
            clouds_yaml.merge_into(state.clouds_yaml, entries)

    # ---------------------------------------------------------- down/status
    def _pid(self, name):
        if name == 'rabbitmq':
            return rabbitmq.server_pid(self.broker_dir)
        if name == REGISTRY:
            from trovestack import registry

            running = registry.running(self.registry_dir)
            return running.pid if running else None
        return processes.read_pid(self.layout.pid_file(name),
                                  self.layout.root)

    def _is_up(self, name):
        return self._pid(name) is not None

    def _stop(self, names):
        """Stop the named processes, in parallel: the services first, then
        the broker and the registry; {name: whether it ran}."""
        def stop_one(name):
            if name == 'rabbitmq':
                return rabbitmq.stop(self.broker_dir)
            if name == REGISTRY:
                return self._stop_registry()
            return processes.stop(self.layout.pid_file(name),
                                  self.layout.root)

        last = [name for name in names if name in ('rabbitmq', REGISTRY)]
        results = {}
        for group in ([name for name in names if name not in last], last):
            with concurrent.futures.ThreadPoolExecutor(
                    len(group) or 1) as pool:
                results.update(zip(group, pool.map(stop_one, group),
                                   strict=True))
        return results

    def down(self):
        """Stop every process this state directory started; (name, was_up)
        for each service (and the registry when enabled)."""
        state = self.layout.load_state()
        names = list(SERVICES)
        if (state and state.registry) or self._is_up(REGISTRY):
            names.append(REGISTRY)
        results = self._stop(names)
        return [(name, results[name]) for name in names]

    def status(self):
        """One row per process: name, state, pid, url (no secrets)."""
        state = self.layout.load_state()
        names = self._names(state) if state else list(SERVICES)
        pids = {name: self._pid(name) for name in names}
        consumers = self._rpc_consumers(pids)
        rows = []
        for name in names:
            pid = pids[name]
            url, answers = self._probe(name, state, consumers)
            if pid is None:
                condition = 'stopped'
            elif answers:
                condition = 'running'
            else:
                condition = 'not answering'
            rows.append((name, condition, pid or '', url))
        return rows

    def _rpc_consumers(self, pids):
        """{topic: consumers} from the broker, or None when it is down."""
        broker = self.broker
        if broker is None or pids.get('rabbitmq') is None:
            return None
        topics = [s.rpc_topic for s in SERVICES.values() if s.kind == RPC]
        try:
            return rabbitmq.queue_consumers(broker, topics)
        except rabbitmq.BrokerError:
            return None

    def _probe(self, name, state, consumers):
        """(url to show, whether the process answers)."""
        if state is None:
            return '', False
        if name == REGISTRY:
            url = f'http://{layout_mod.HOST}:{state.ports[REGISTRY]}/v2/'
            return url, processes.http_answers(url)
        service = SERVICES[name]
        if service.kind == BROKER:
            broker = self.broker
            url = (f'rabbit://{broker.user}@{broker.host}:{broker.port}/'
                   f'{broker.vhost}') if broker else ''
            return url, consumers is not None
        if service.kind == RPC:
            return (f'rpc topic {service.rpc_topic}',
                    bool(consumers and consumers.get(service.rpc_topic)))
        url = service.url(state)
        return url, processes.http_answers(url)

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
