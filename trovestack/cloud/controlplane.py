"""The local control plane: RabbitMQ, Keystone, Glance, Nova API, Trove API,
trove-taskmanager and trove-conductor (and, when asked, a container
registry).

All run on loopback from one state directory, on SQLite; Trove's and Nova's
services talk over the cloud's own RabbitMQ.  ``up`` bootstraps once and
afterwards only restarts; the broker starts beside the other services.
"""

import concurrent.futures
import functools
import logging
import shutil
import time

from trovestack.cloud import LocalCloudError
from trovestack.cloud import bootstrap
from trovestack.cloud import clouds_yaml
from trovestack.cloud import configs
from trovestack.cloud import layout as layout_mod
from trovestack.cloud import processes
from trovestack.cloud import rabbitmq
from trovestack.cloud import supervision
from trovestack.cloud.services import BROKER
from trovestack.cloud.services import HTTP
from trovestack.cloud.services import PORTED
from trovestack.cloud.services import RPC
from trovestack.cloud.services import SERVICES

LOG = logging.getLogger(__name__)
START_TIMEOUT = 120.0
REGISTRY = 'registry'
BROKER_USER = BROKER_VHOST = 'trovestack'


class LocalCloud:
    def __init__(self, state_dir=None):
        self.layout = layout_mod.Layout(
            state_dir or layout_mod.default_state_dir())
        self.broker_dir = self.layout.service_dir('rabbitmq')
        self.registry_dir = self.layout.service_dir(REGISTRY)
        self.supervisor = supervision.Supervisor(self.layout.root,
                                                 self.layout.root / 'logs')

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
                self.supervisor.forget(REGISTRY)
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
            user=BROKER_USER, vhost=BROKER_VHOST,
            supervisor=self.layout.root)
        configs.write_configs(state, self.layout, broker.transport_url())
        if not state.bootstrapped:
            LOG.info('Creating the service databases in %s', self.layout.root)
        programs = self.programs(state, broker)
        try:
            self.supervisor.declare(programs)
            supervision.start_in_order(
                [*programs, *self._set_up_steps(state)],
                lambda program: self.supervisor.start(program, timeout))
        except BaseException:
            self._stop(to_start)
            if not any(status.running for status in
                       self.supervisor.statuses().values()):
                self.supervisor.shutdown()
            raise
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

    def programs(self, state, broker=None) -> list[supervision.Program]:
        """Every process of the control plane, declared: RabbitMQ (its
        epmd and server), the services, the registry when enabled.  A
        first start's services need their set-up step (``<name>-setup``);
        taskmanager and conductor need Trove's database and the broker."""
        broker = broker or self.broker
        result = rabbitmq.programs(self.broker_dir)
        for name, service in SERVICES.items():
            if service.kind == BROKER:
                continue
            needs = (f'{name}-setup',)
            if service.kind == RPC:
                needs = ('trove', 'trove-setup', rabbitmq.SERVER_PROGRAM)
            result.append(supervision.Program(
                name, service.command(state, self.layout),
                ready=self._probe_of(service, state, broker),
                env=service.env(self.layout), needs=needs,
                log=str(self.layout.log_file(name))))
        if state.registry:
            from trovestack import registry

            result.append(registry.program(
                self.registry_dir, layout_mod.HOST, state.ports[REGISTRY],
                supervisor_root=self.layout.root))
        return result

    def _probe_of(self, service, state, broker):
        if service.kind == RPC:
            return lambda: self._consuming(broker, service)
        url = service.url(state)
        return lambda: processes.http_answers(url)

    def _set_up_steps(self, state):
        """The first start's ``*-manage`` steps, one per HTTP service."""
        if state.bootstrapped:
            return []
        return [supervision.Step(f'{name}-setup',
                                 functools.partial(self._set_up_service,
                                                   service, state))
                for name, service in SERVICES.items()
                if service.kind == HTTP]

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

    def restart(self, names, timeout=120.0):
        """Restart running services (after their configuration changed),
        one after the other, each awaited as at start."""
        by_name = {program.name: program
                   for program in self.programs(self.state)}
        for name in names:
            self.supervisor.stop(name)
            self.supervisor.start(by_name[name], timeout)

    @staticmethod
    def _consuming(broker, service):
        try:
            counts = rabbitmq.queue_consumers(broker, [service.rpc_topic])
        except rabbitmq.BrokerError:
            return False
        return bool(counts[service.rpc_topic])

    def _write_clouds_yaml(self, state):
        entries = clouds_yaml.entries(state)
        clouds_yaml.merge_into(self.layout.clouds_yaml, entries)
        if state.clouds_yaml != str(self.layout.clouds_yaml):
            clouds_yaml.merge_into(state.clouds_yaml, entries)

    # ---------------------------------------------------------- down/status
    def _pid(self, name):
        return self.supervisor.pid(name)

    def _is_up(self, name):
        return self._pid(name) is not None

    def _stop(self, names):
        """Stop the named processes, in parallel: the services first, then
        the broker (and its epmd) and the registry; {name: whether it
        ran}."""
        last = [name for name in names if name in ('rabbitmq', REGISTRY)]
        results = {}
        for group in ([name for name in names if name not in last], last):
            with concurrent.futures.ThreadPoolExecutor(
                    len(group) or 1) as pool:
                results.update(zip(group, pool.map(self.supervisor.stop,
                                                   group), strict=True))
        if 'rabbitmq' in names:
            self.supervisor.stop(rabbitmq.EPMD)
        return results

    def down(self):
        """Stop every process this state directory started, then its
        supervisor; (name, was_up) for each service (and the registry when
        enabled)."""
        state = self.layout.load_state()
        names = list(SERVICES)
        if (state and state.registry) or self._is_up(REGISTRY):
            names.append(REGISTRY)
        results = self._stop(names)
        self.supervisor.shutdown()
        return [(name, results[name]) for name in names]

    def status(self):
        """One row per process: name, state, pid, url, crashes and the
        last error (no secrets)."""
        state = self.layout.load_state()
        names = self._names(state) if state else list(SERVICES)
        statuses = self.supervisor.statuses()
        pids = {name: self._pid_of(statuses.get(name)) for name in names}
        consumers = self._rpc_consumers(pids)
        rows = []
        for name in names:
            status = statuses.get(name) or supervision.Status(
                name, supervision.STOPPED, None)
            url, answers = self._probe(name, state, consumers)
            rows.append((name, supervision.condition(status, answers),
                         pids[name] or '', url, status.crashes,
                         status.last_error))
        return rows

    @staticmethod
    def _pid_of(status):
        return status.pid if status is not None and status.running else None

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
