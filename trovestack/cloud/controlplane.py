"""The local control plane: RabbitMQ, Keystone, Glance, Nova API, Trove API,
trove-taskmanager and trove-conductor (and, when asked, a container
registry and the dashboard).

All run on loopback from one state directory, on SQLite; Trove's and Nova's
services talk over the cloud's own RabbitMQ.  ``up`` bootstraps once and
afterwards only restarts; the broker starts beside the other services.
"""

import concurrent.futures
import dataclasses
import functools
import logging
import pathlib
import shutil
import time
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Sequence

from trovestack.cloud import LocalCloudError
from trovestack.cloud import bootstrap
from trovestack.cloud import clouds_yaml
from trovestack.cloud import configs
from trovestack.cloud import dashboard as dashboard_mod
from trovestack.cloud import layout as layout_mod
from trovestack.cloud import processes
from trovestack.cloud import rabbitmq
from trovestack.cloud import registry
from trovestack.cloud import services as services_mod
from trovestack.cloud import supervision
from trovestack.cloud import trove_env
from trovestack.cloud import trove_source as trove_source_mod
from trovestack.cloud.services import BROKER
from trovestack.cloud.services import HTTP
from trovestack.cloud.services import PORTED
from trovestack.cloud.services import RPC
from trovestack.cloud.services import SERVICES
from trovestack.cloud.services import TROVE_SERVICES

LOG = logging.getLogger(__name__)
START_TIMEOUT = 120.0
REGISTRY = 'registry'
DASHBOARD = dashboard_mod.NAME
BROKER_USER = BROKER_VHOST = 'trovestack'
# ``up(trove_source=...)``: keep what the cloud runs; back to the release.
KEEP = object()
RELEASE = 'release'

# ``status()``'s row: name, condition, pid (or ''), url, crashes, last error.
StatusRow = tuple[str, str, int | str, str, int, str]

# ``restart`` names Trove's three services together by this word.
TROVE_GROUP = 'trove'
TROVE_API_ALIAS = 'trove-api'
MIGRATE_STEP = 'trove-setup'


@dataclasses.dataclass(frozen=True)
class TrovePlan:
    """Which Trove the cloud is to run: ``tree`` (None: the release), the
    key of its environment, the stamp of its code (what Trove's services
    run once started) and the digest of its database code."""

    tree: str | None
    env_key: str | None
    stamp: str
    migrations: str
    env_created: bool = False


@dataclasses.dataclass(frozen=True)
class TroveRuns:
    """What ``cloud status`` says of Trove's code: where it comes from, and
    whether the tree changed since Trove's services started."""

    source: trove_source_mod.TroveSource | None
    changed: bool = False
    missing: str | None = None   # a recorded tree that is gone

    def describe(self) -> str:
        if self.missing:
            return f'trove from {self.missing} (missing)'
        text = (self.source.describe() if self.source is not None
                else 'trove (unknown)')
        if self.changed:
            text += ('; changed since Trove started (trovestack cloud '
                     'restart trove)')
        return text


class LocalCloud:
    def __init__(self, state_dir: pathlib.Path | str | None = None) -> None:
        self.layout = layout_mod.Layout(
            state_dir or layout_mod.default_state_dir())
        self.broker_dir = self.layout.service_dir('rabbitmq')
        self.registry_dir = self.layout.service_dir(REGISTRY)
        self.supervisor = supervision.Supervisor(self.layout.root,
                                                 self.layout.root / 'logs')

    @property
    def state(self) -> layout_mod.CloudState | None:
        return self.layout.load_state()

    @property
    def broker(self) -> rabbitmq.Broker | None:
        """The cloud's RabbitMQ (running or not), or None before up."""
        return rabbitmq.load(self.broker_dir)

    # ----------------------------------------------------------------- up
    def up(self, base_port: int = layout_mod.DEFAULT_BASE_PORT,
           clouds_yaml_path: pathlib.Path | str | None = None,
           fresh: bool = False, timeout: float = START_TIMEOUT,
           registry: bool | None = None, trove_source: object = KEEP,
           dashboard: bool | None = None) -> list[StatusRow]:
        """Start every service, bootstrapping first if needed.

        ``registry``, ``dashboard``: True/False turns the container
        registry, the dashboard (Horizon with trove-dashboard) on/off for
        this and later runs; None keeps what the cloud had.
        ``trove_source``: a Trove source tree to run Trove's services from
        (installed editable in an environment of its own, see
        :mod:`trove_env`), :data:`RELEASE` (or None) for the release in
        the venv, :data:`KEEP` for what the cloud ran; remembered.  A tree
        that is not one, does not compile or needs what pip cannot install
        is a one-line error, and the cloud keeps its previous Trove.  When
        the code Trove's services run changed since they started, only
        they are restarted (after Trove's db_sync when its database code
        changed).
        """
        if fresh and trove_source not in (KEEP, None, RELEASE):
            # A tree that cannot run is an error before the wipe.
            trove_source_mod.check_compiles(
                trove_source)  # type: ignore[arg-type]  # a tree's path
        if fresh:
            self.wipe()
        state = self.layout.load_state()
        if state is None:
            target = clouds_yaml_path or layout_mod.default_clouds_yaml()
            state = layout_mod.CloudState.new(base_port, target, PORTED)
        elif clouds_yaml_path:
            state.clouds_yaml = str(clouds_yaml_path)
        # Before anything changes: a tree that cannot run leaves all as is.
        plan = self.plan_trove(state, trove_source)
        before = dataclasses.replace(state)
        restart_trove = self._trove_changed(before, plan)
        migrate = state.bootstrapped and self._migrations_changed(before,
                                                                  plan)
        state.trove_source, state.trove_env = plan.tree, plan.env_key
        for name, wanted in ((REGISTRY, registry), (DASHBOARD, dashboard)):
            if wanted is not None:
                if not wanted and getattr(state, name):
                    self.supervisor.forget(name)
                setattr(state, name, wanted)
        state.add_ports(self._port_names(state))
        to_start = [name for name in self._names(state)
                    if not self._is_up(name)]
        self._check_ports(state, to_start)

        self.layout.make_dirs(name for name, service in SERVICES.items()
                              if service.kind == HTTP)
        # Trove's choice is recorded once its services run it.
        self.layout.save_state(dataclasses.replace(
            state, trove_source=before.trove_source,
            trove_env=before.trove_env))
        broker = rabbitmq.configure(
            self.broker_dir, layout_mod.HOST, state.ports['rabbitmq'],
            user=BROKER_USER, vhost=BROKER_VHOST,
            supervisor=self.layout.root)
        configs.write_configs(state, self.layout, broker.transport_url())
        if not state.bootstrapped:
            LOG.info('Creating the service databases in %s', self.layout.root)
        programs = self.programs(state, broker)
        steps = [*self._set_up_steps(state), *self._dashboard_steps(state)]
        if migrate:
            steps.append(self._migrate_step(state))
        if restart_trove:
            # Only Trove's services: everything else keeps running.
            self._stop([name for name in TROVE_SERVICES
                        if name not in to_start])
            if state.bootstrapped:
                programs = self._trove_at_once(programs)
        try:
            self.supervisor.declare(programs)
            supervision.start_in_order(
                [*programs, *steps],
                lambda program: self.supervisor.start(program, timeout))
        except BaseException:
            self._stop(to_start)
            if not any(status.running for status in
                       self.supervisor.statuses().values()):
                self.supervisor.shutdown()
            raise
        self._record_trove(state, plan)
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

    def programs(
            self, state: layout_mod.CloudState,
            broker: rabbitmq.Broker | None = None,
    ) -> list[supervision.Program]:
        """Every process of the control plane, declared: RabbitMQ (its
        epmd and server), the services, the registry when enabled.  A
        first start's services need their set-up step (``<name>-setup``);
        taskmanager and conductor need Trove's database and the broker."""
        broker = broker or self.broker
        runtime = trove_env.runtime_of(self.layout, state)
        result = rabbitmq.programs(self.broker_dir)
        for name, service in SERVICES.items():
            if service.kind == BROKER:
                continue
            needs: tuple[str, ...] = (f'{name}-setup',)
            if service.kind == RPC:
                needs = ('trove', 'trove-setup', rabbitmq.SERVER_PROGRAM)
            env = service.env(self.layout)
            if service.runs_trove:
                env = {**env, **runtime.env()}
            result.append(supervision.Program(
                name, service.command(state, self.layout, runtime),
                ready=self._probe_of(service, state, broker),
                env=env, needs=needs,
                log=str(self.layout.log_file(name))))
        if state.registry:
            result.append(registry.program(
                self.registry_dir, layout_mod.HOST, state.ports[REGISTRY],
                supervisor_root=self.layout.root))
        if state.dashboard:
            result.append(dashboard_mod.program(state, self.layout))
        return result

    def _dashboard_steps(
            self, state: layout_mod.CloudState) -> list[supervision.Step]:
        """The dashboard's settings written; its static files collected
        when they are missing or stale (the running dashboard stopped
        for that, to start again after)."""
        if not state.dashboard:
            return []
        dashboard_mod.write_settings(state, self.layout)
        if not dashboard_mod.needs_setup(self.layout):
            return []
        self.supervisor.stop(DASHBOARD)
        return [dashboard_mod.setup_step(self.layout)]

    def _probe_of(self, service: services_mod.Service,
                  state: layout_mod.CloudState,
                  broker: rabbitmq.Broker | None) -> Callable[[], bool]:
        if service.kind == RPC:
            return lambda: self._consuming(broker, service)
        url = service.url(state)
        return lambda: processes.http_answers(url)

    def _set_up_steps(self,
                      state: layout_mod.CloudState) -> list[supervision.Step]:
        """The first start's ``*-manage`` steps, one per HTTP service."""
        if state.bootstrapped:
            return []
        return [supervision.Step(f'{name}-setup',
                                 functools.partial(self._set_up_service,
                                                   service, state))
                for name, service in SERVICES.items()
                if service.kind == HTTP]

    @staticmethod
    def _optional(state: layout_mod.CloudState) -> list[str]:
        """The registry and the dashboard, each when it is enabled."""
        return [name for name in (REGISTRY, DASHBOARD)
                if getattr(state, name)]

    def _names(self, state: layout_mod.CloudState) -> list[str]:
        """Every process of this cloud: the services, then the registry
        and the dashboard when they are enabled."""
        return [*SERVICES, *self._optional(state)]

    def _port_names(self, state: layout_mod.CloudState) -> list[str]:
        return [*PORTED, *self._optional(state)]

    def _check_ports(self, state: layout_mod.CloudState,
                     names: Iterable[str]) -> None:
        for name in names:
            port = state.ports.get(name)
            if port and not processes.port_is_free(port, layout_mod.HOST):
                raise LocalCloudError(
                    f'port {port} ({name}) on {layout_mod.HOST} is in use; '
                    f'stop what listens there or start a fresh cloud with '
                    f'another --base-port')

    def _set_up_service(self, service: services_mod.Service,
                        state: layout_mod.CloudState) -> None:
        log = self.layout.root / 'logs' / f'{service.name}-setup.log'
        extra: Sequence[list[str]]
        extra, env = (), service.env(self.layout)
        if service.name == 'keystone':
            command, password_env = bootstrap.keystone_bootstrap_command(
                state)
            extra, env = [command], {**env, **password_env}
        runtime = trove_env.runtime_of(self.layout, state)
        if service.runs_trove:
            env = {**env, **runtime.env()}
        for commands in service.setup_commands(extra):
            processes.run_checked(
                service.setup_argv(self.layout, commands, runtime), log, env,
                what=f'{service.name}-manage '
                     f'{", ".join(command[0] for command in commands)}')

    def restart(self, names: Iterable[str], timeout: float = 120.0) -> None:
        """Restart running services (after their configuration changed),
        one after the other, each awaited as at start."""
        # a cloud that runs has its state
        by_name = {program.name: program for program in self.programs(
            self.state)}  # type: ignore[arg-type]
        for name in names:
            self.supervisor.stop(name)
            self.supervisor.start(by_name[name], timeout)

    # ------------------------------------------------------------- Trove
    def plan_trove(self, state: layout_mod.CloudState,
                   trove_source: object = KEEP) -> TrovePlan:
        """Which Trove ``state``'s cloud is to run (see ``up``): a tree is
        checked (a Trove tree; compiling when its code changed since
        Trove started) and its environment made when it has none.
        Changes nothing else; LocalCloudError (one line) when the tree
        cannot run."""
        if trove_source is KEEP:
            tree = state.trove_source
        elif trove_source in (None, RELEASE):
            tree = None
        else:
            tree = trove_source  # type: ignore[assignment]  # a tree's path
        if tree is None:
            return TrovePlan(None, None, trove_source_mod.release().identity(),
                             trove_env.migrations_digest(None))
        tree = str(trove_source_mod.check_tree(tree))
        digest = trove_env.code_digest(tree)
        if not (state.trove_started or '').endswith(f':{digest}') or \
                tree != state.trove_source:
            trove_source_mod.check_compiles(tree)
        try:
            ensured = trove_env.ensure(self.layout, tree)
        except trove_env.RequirementError as exc:
            raise trove_env.RequirementError(
                f'{exc}; the cloud keeps {self._kept(state)}') from None
        return TrovePlan(tree, ensured.env.key, f'{ensured.env.key}:{digest}',
                         trove_env.migrations_digest(tree),
                         env_created=ensured.created)

    @staticmethod
    def _kept(state: layout_mod.CloudState) -> str:
        """What a cloud whose new Trove failed keeps, for people."""
        if not state.trove_source:
            return trove_source_mod.release().describe()
        try:
            return trove_source_mod.of_tree(state.trove_source).describe()
        except LocalCloudError:
            return f'trove from {state.trove_source}'

    @staticmethod
    def _started(state: layout_mod.CloudState) -> str | None:
        """The stamp of what Trove's services run; a cloud made before
        stamps ran the release."""
        if state.trove_started:
            return state.trove_started
        if not state.trove_source and not state.trove_env:
            return trove_source_mod.release().identity()
        return None

    def _trove_changed(self, state: layout_mod.CloudState,
                       plan: TrovePlan) -> bool:
        return self._started(state) != plan.stamp

    @staticmethod
    def _migrations_changed(state: layout_mod.CloudState,
                            plan: TrovePlan) -> bool:
        done = state.trove_migrations
        if done is None and not state.trove_source:
            done = trove_env.migrations_digest(None)
        return done != plan.migrations

    def _migrate_step(self, state: layout_mod.CloudState) -> supervision.Step:
        """Trove's db_sync with the code it is to run (a tree may bring
        migrations), before its services start."""
        return supervision.Step(MIGRATE_STEP, functools.partial(
            self._migrate, state))

    def _migrate(self, state: layout_mod.CloudState) -> None:
        service = SERVICES['trove']
        log = self.layout.root / 'logs' / f'{MIGRATE_STEP}.log'
        runtime = trove_env.runtime_of(self.layout, state)
        processes.run_checked(
            service.setup_argv(self.layout, [['db_sync']], runtime),
            log, {**service.env(self.layout), **runtime.env()},
            what='trove-manage db_sync')

    @staticmethod
    def _trove_at_once(
            programs: Iterable[supervision.Program],
    ) -> list[supervision.Program]:
        """The programs, Trove's task manager and conductor no longer
        waiting for its API: on a bootstrapped cloud (its database made)
        a restart starts all three at once (13 s instead of 19 s with a
        load of 8 on 2 cores)."""
        return [dataclasses.replace(program, needs=tuple(
                    need for need in program.needs if need != 'trove'))
                if program.name in TROVE_SERVICES else program
                for program in programs]

    def _record_trove(self, state: layout_mod.CloudState,
                      plan: TrovePlan) -> None:
        """Trove's services run ``plan``: record it, and remove the
        environments no longer used."""
        state.trove_source, state.trove_env = plan.tree, plan.env_key
        state.trove_started = plan.stamp
        state.trove_migrations = plan.migrations
        self.layout.save_state(state)
        trove_env.remove_stale(self.layout,
                               [plan.env_key] if plan.env_key else [])

    def restart_trove(self, timeout: float = START_TIMEOUT) -> None:
        """Restart Trove's three services (nothing else) with the code of
        the cloud's Trove as it is now: its environment made again when
        the tree's requirements changed, its db_sync run first (while the
        services still run) when its database code changed.
        LocalCloudError, with the previous Trove left running, when the
        tree cannot run or its db_sync fails."""
        state = self._existing_state()
        plan = self.plan_trove(state, KEEP)
        before = dataclasses.replace(state)
        state.trove_source, state.trove_env = plan.tree, plan.env_key
        if self._migrations_changed(before, plan):
            self._migrate(state)
        by_name = {program.name: program
                   for program in self._trove_at_once(self.programs(state))}
        nodes = [by_name[name] for name in TROVE_SERVICES]
        self._stop(list(TROVE_SERVICES))
        self.supervisor.declare(nodes)
        supervision.start_in_order(
            nodes, lambda program: self.supervisor.start(program, timeout))
        self._record_trove(state, plan)

    def restart_services(self, names: Iterable[str] = (TROVE_GROUP,),
                         timeout: float = START_TIMEOUT) -> list[StatusRow]:
        """``cloud restart``: ``trove`` names Trove's three services (see
        :meth:`restart_trove`), ``trove-api`` its API alone; any other
        name one process of the cloud.  The status rows afterwards."""
        state = self._existing_state()
        known = [*self._names(state), TROVE_API_ALIAS]
        unknown = [name for name in names if name not in known]
        if unknown:
            raise LocalCloudError(
                f'no service {", ".join(unknown)} in the local cloud; '
                f'restart one of: {TROVE_GROUP} (Trove\'s services), '
                f'{", ".join(known)}')
        if not self.supervisor.answers():
            raise LocalCloudError(f'the local cloud in {self.layout.root} '
                                  f'is not running; run "trovestack cloud '
                                  f'up"')
        others = []
        for name in dict.fromkeys(names):
            if name == TROVE_GROUP:
                continue
            name = TROVE_GROUP if name == TROVE_API_ALIAS else name
            if name not in others:
                others.append(name)
        if TROVE_GROUP in names:
            self.restart_trove(timeout)
            others = [name for name in others if name not in TROVE_SERVICES]
        if others:
            self.restart(others, timeout)
        return self.status()

    def trove_tool(self, name: str) -> str:
        """The path of one of Trove's console scripts (``trove-manage``)
        as the cloud runs Trove: from its tree's environment, or beside
        this Python."""
        return trove_env.runtime_of(self.layout, self.state).script(name)

    def trove_runs(self) -> TroveRuns:
        """Which Trove the cloud runs (for ``cloud status``)."""
        state = self.state
        if state is None or not state.trove_source:
            return TroveRuns(trove_source_mod.release())
        try:
            source = trove_source_mod.of_tree(state.trove_source)
        except LocalCloudError:
            return TroveRuns(None, missing=state.trove_source)
        started = state.trove_started or ''
        changed = not started.endswith(
            f':{trove_env.code_digest(state.trove_source)}')
        return TroveRuns(source, changed=changed)

    def _existing_state(self) -> layout_mod.CloudState:
        state = self.state
        if state is None:
            raise LocalCloudError(f'no local cloud in {self.layout.root}; '
                                  f'run "trovestack cloud up" first')
        return state

    @staticmethod
    def _consuming(broker: rabbitmq.Broker | None,
                   service: services_mod.Service) -> bool:
        try:
            # probed once the broker is up
            counts = rabbitmq.queue_consumers(
                broker, [service.rpc_topic])  # type: ignore[arg-type]
        except rabbitmq.BrokerError:
            return False
        return bool(counts[service.rpc_topic])

    def _write_clouds_yaml(self, state: layout_mod.CloudState) -> None:
        entries = clouds_yaml.entries(state)
        clouds_yaml.merge_into(self.layout.clouds_yaml, entries)
        if state.clouds_yaml != str(self.layout.clouds_yaml):
            clouds_yaml.merge_into(state.clouds_yaml, entries)

    # ---------------------------------------------------------- down/status
    def _pid(self, name: str) -> int | None:
        return self.supervisor.pid(name)

    def _is_up(self, name: str) -> bool:
        return self._pid(name) is not None

    def _stop(self, names: Sequence[str]) -> dict[str, bool]:
        """Stop the named processes, in parallel: the services first, then
        the broker (and its epmd) and the registry; {name: whether it
        ran}."""
        last = [name for name in names if name in ('rabbitmq', REGISTRY)]
        results: dict[str, bool] = {}
        for group in ([name for name in names if name not in last], last):
            with concurrent.futures.ThreadPoolExecutor(
                    len(group) or 1) as pool:
                results.update(zip(group, pool.map(self.supervisor.stop,
                                                   group), strict=True))
        if 'rabbitmq' in names:
            self.supervisor.stop(rabbitmq.EPMD)
        return results

    def down(self) -> list[tuple[str, bool]]:
        """Stop every process this state directory started, then its
        supervisor; (name, was_up) for each service (and the registry when
        enabled)."""
        state = self.layout.load_state()
        names = list(SERVICES)
        for name in (REGISTRY, DASHBOARD):
            if (state and getattr(state, name)) or self._is_up(name):
                names.append(name)
        results = self._stop(names)
        self.supervisor.shutdown()
        return [(name, results[name]) for name in names]

    def status(self) -> list[StatusRow]:
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
    def _pid_of(status: supervision.Status | None) -> int | None:
        return status.pid if status is not None and status.running else None

    def _rpc_consumers(
            self, pids: dict[str, int | None]) -> dict[str, int | None] | None:
        """{topic: consumers} from the broker, or None when it is down."""
        broker = self.broker
        if broker is None or pids.get('rabbitmq') is None:
            return None
        topics = [s.rpc_topic for s in SERVICES.values() if s.kind == RPC]
        try:
            return rabbitmq.queue_consumers(broker, topics)
        except rabbitmq.BrokerError:
            return None

    def _probe(self, name: str, state: layout_mod.CloudState | None,
               consumers: dict[str, int | None] | None) -> tuple[str, bool]:
        """(url to show, whether the process answers)."""
        if state is None:
            return '', False
        if name == REGISTRY:
            url = f'http://{layout_mod.HOST}:{state.ports[REGISTRY]}/v2/'
            return url, processes.http_answers(url)
        if name == DASHBOARD:
            url = dashboard_mod.url(state)
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

    def wipe(self) -> None:
        """Stop everything and remove the state and our clouds.yaml entries."""
        self.down()
        state = self.layout.load_state()
        if state is not None:
            clouds_yaml.remove_from(state.clouds_yaml,
                                    list(clouds_yaml.entries(state)))
        shutil.rmtree(self.layout.root, ignore_errors=True)

    def dashboard_url(self) -> str | None:
        """The dashboard's URL when the cloud runs one, else None."""
        state = self.state
        return dashboard_mod.url(state) if state and state.dashboard \
            else None

    def env(self, cloud: str = clouds_yaml.ADMIN_CLOUD) -> dict[str, str]:
        """OS_* variables that select this cloud (no secrets in them)."""
        return {'OS_CLIENT_CONFIG_FILE': str(self.layout.clouds_yaml),
                'OS_CLOUD': cloud}
