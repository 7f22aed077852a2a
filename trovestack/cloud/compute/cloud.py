"""The compute layer of a local cloud: bring up, report, tear down."""

import dataclasses
import logging
import pathlib
import shutil
from collections.abc import Callable
from collections.abc import Iterable
from typing import Any

from trovestack.cloud import bootstrap
from trovestack.cloud import controlplane
from trovestack.cloud import layout as layout_mod
from trovestack.cloud import processes
from trovestack.cloud import rabbitmq
from trovestack.cloud import supervision
from trovestack.cloud.compute import accounts
from trovestack.cloud.compute import ceph
from trovestack.cloud.compute import cinder
from trovestack.cloud.compute import common
from trovestack.cloud.compute import daemons
from trovestack.cloud.compute import libvirt
from trovestack.cloud.compute import mariadb
from trovestack.cloud.compute import namespace
from trovestack.cloud.compute import network
from trovestack.cloud.compute import neutron
from trovestack.cloud.compute import nova
from trovestack.cloud.compute import object_store
from trovestack.cloud.compute import paths as paths_mod
from trovestack.cloud.compute import placement
from trovestack.cloud.compute.daemons import Health
from trovestack.common import ini
from trovestack.common import netns
from trovestack.common import waiting

LOG = logging.getLogger(__name__)
REQUIRED_BINARIES = {
    'ovsdb-server': 'openvswitch-switch', 'ovs-vswitchd': 'openvswitch-switch',
    'ovn-northd': 'ovn-central', 'ovn-controller': 'ovn-host',
    'libvirtd': 'libvirt-daemon', 'qemu-system-x86_64': 'qemu-system-x86',
    'genisoimage': 'genisoimage', 'mariadbd': 'mariadb-server',
    'ceph-mon': 'ceph-mon', 'ceph-osd': 'ceph-osd', 'ceph-mgr': 'ceph-mgr',
    'ceph': 'ceph-common', 'radosgw': 'radosgw',
}


# What each process and set-up step needs ready before it starts: the
# compute layer's start graph (doc/architecture.md draws it).  Steps are
# the set-up actions of ComputeLayer._steps; a name not in the graph of a
# run (a first-time step already done) counts as ready, so a node also
# names what that step needed.
NEEDS = {
    'ovsdb-server': ('namespace', 'ovs-databases'),
    'ovn-nb-db': ('namespace', 'ovs-databases'),
    'ovn-sb-db': ('namespace', 'ovs-databases'),
    'switch-settings': ('ovsdb-server',),
    'ovs-vswitchd': ('switch-settings',),
    'ovn-northd': ('ovn-nb-db', 'ovn-sb-db'),
    'bridges': ('ovs-vswitchd',),
    'ovn-controller': ('bridges', 'ovn-sb-db'),
    'virtlogd': ('namespace',),
    'libvirtd': ('virtlogd',),
    'forwarder': ('namespace', 'bridges'),
    ceph.MON: ('ceph-monitor-store',),
    # The OSD's store is made with its key (mkfs asks the monitor).
    'ceph-osd-store': (ceph.MON, 'ceph-keys'),
    ceph.OSD: ('ceph-osd-store', ceph.MON, 'ceph-keys'),
    'ceph-keys': (ceph.MON,),
    ceph.MGR: (ceph.OSD, 'ceph-keys'),
    'ceph-secret': ('libvirtd', 'ceph-keys'),
    'ceph-pool': (ceph.OSD,),
    # It makes its pools itself at its first start.
    object_store.NAME: (ceph.OSD, 'ceph-keys'),
    mariadb.NAME: ('mariadb-data',),
    'databases': (mariadb.NAME,),
    'placement-setup': ('databases',),
    'neutron-setup': ('databases',),
    'cinder-setup': ('databases',),
    'placement': ('placement-setup', 'databases'),
    'neutron': ('neutron-setup', 'databases', 'ovn-northd'),
    'cinder': ('cinder-setup', 'databases'),
    'accounts': ('placement', 'neutron', 'cinder'),
    'nova-setup': ('databases',),
    'nova-api-settings': ('nova-setup', 'databases'),
    'bootstrapped': ('accounts', 'nova-setup', 'ceph-pool', 'databases',
                     'placement', 'neutron', 'cinder', ceph.MGR),
    cinder.SCHEDULER: ('bootstrapped',),
    cinder.VOLUME: ('bootstrapped', 'ceph-keys'),
    'old-guests': ('libvirtd',),
    'nova-conductor': ('nova-api-settings', 'bootstrapped'),
    'nova-scheduler': ('nova-api-settings', 'bootstrapped'),
    nova.COMPUTE: ('nova-api-settings', 'bootstrapped', 'libvirtd',
                   'ovn-controller', 'forwarder', 'old-guests',
                   'ceph-secret'),
    'hypervisor': (nova.COMPUTE, 'nova-scheduler', 'nova-conductor'),
    'volume-service': (cinder.VOLUME, cinder.SCHEDULER),
}
# Processes that start at once, at most (2 cores: each OpenStack service
# spends seconds of CPU importing itself).
PARALLEL_STARTS = 4


class ComputeLayer:
    """Placement, neutron/OVN, Ceph, cinder, libvirt and nova of the cloud
    in layout, under the cloud's supervisor."""

    def __init__(self, layout: layout_mod.Layout) -> None:
        self.layout = layout
        self.paths = paths_mod.ComputePaths(layout.root)
        self.supervisor = supervision.Supervisor(layout.root,
                                                 self.paths.log_dir)

    @property
    def state(self) -> paths_mod.ComputeState | None:
        return self.paths.load_state()

    def daemons(self, cstate: paths_mod.ComputeState,
                control_ports: Iterable[int] = (), *,
                guest_ports: Iterable[int] = ()) -> list[supervision.Program]:
        """Every process of the layer, each with what it needs, in a
        start order (stopped in the reverse one)."""
        paths = self.paths
        result = network.daemons_in_order(paths)
        result += libvirt.daemons_in_order(paths)
        result.append(namespace.forwarder(
            paths, self._forward_rules(cstate, control_ports, guest_ports)))
        result += ceph.daemons_in_order(paths)
        result.append(object_store.program(cstate, paths))
        result.append(mariadb.daemon(paths))
        result.append(placement.daemon(cstate, paths))
        result.append(neutron.daemon(cstate, paths))
        result.append(cinder.daemon(cstate, paths))
        result += cinder.service_daemons(paths)
        result += nova.daemons_in_order(paths)
        result = [dataclasses.replace(program,
                                      needs=NEEDS.get(program.name, ()))
                  for program in result]
        by_name = {program.name: program for program in result}
        return [by_name[name] for name in supervision.order(result)]

    @staticmethod
    def _forward_rules(
            cstate: paths_mod.ComputeState, control_ports: Iterable[int],
            guest_ports: Iterable[int]) -> list[tuple[str, int, int]]:
        """Every loopback port mirrored into the namespace (qemu, there,
        reaches Ceph's monitor and OSD); the control plane's ``guest_ports``
        (the broker's, the registry's) also on the management network's
        gateway, for guests, and so is object storage (Trove's backups go
        there from the guest)."""
        ports = sorted({*control_ports, *cstate.ports.values(),
                        *ceph.osd_ports(cstate), *guest_ports})
        rules = [('127.0.0.1', port, port) for port in ports]
        for port in (*guest_ports, cstate.ports[object_store.PORT]):
            rules.append((cstate.gateway, port, port))
        return rules

    # ----------------------------------------------------------------- up
    def up(
            self, state: layout_mod.CloudState, transport_url: str, *,
            control_ports: Iterable[int], guest_ports: Iterable[int],
            timeout: float = 120.0,
            restart_api: Callable[[], object] | None = None,
    ) -> list[Health]:
        """Start the layer (bootstrapping on first use); [Health].

        Once nova's databases are ready on the layer's MariaDB, nova-api's
        config is pointed at them; ``restart_api()`` is called when that
        changed it (before the scheduler or anyone needs the API)."""
        _check_binaries()
        cstate = self.state or paths_mod.ComputeState.new()
        self.paths.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.paths.save_state(cstate)
        self._write_configs(state, cstate, transport_url)
        libvirt.check_free(self.supervisor)
        programs = self.daemons(cstate, control_ports,
                                guest_ports=guest_ports)
        steps = self._steps(state, cstate, transport_url, timeout,
                            restart_api)
        try:
            self.supervisor.declare(programs)
            supervision.start_in_order(
                [*programs, *steps],
                lambda program: self.supervisor.start(program, timeout),
                parallel=PARALLEL_STARTS)
        except BaseException:
            self.down()
            raise
        return self.status(control_ports, guest_ports=guest_ports)

    def _steps(
            self, state: layout_mod.CloudState, cstate: paths_mod.ComputeState,
            transport_url: str, timeout: float,
            restart_api: Callable[[], object] | None,
    ) -> list[supervision.Step]:
        """The set-up actions of this start (first-time ones only when
        they have not been done)."""
        paths = self.paths
        first = not cstate.bootstrapped
        ceph_first = 'ceph' not in cstate.set_up
        cinder_first = 'cinder' not in cstate.set_up
        objects_first = object_store.SERVICE_TYPE not in cstate.set_up

        def step(name: str, run: Callable[[], object]) -> supervision.Step:
            return supervision.Step(name, run, NEEDS.get(name, ()))

        def set_up(
                service: str, commands: Callable[[], list[common.Command]],
        ) -> supervision.Step:
            return step(f'{service}-setup',
                        lambda: self._set_up(commands(), service))

        def mark_bootstrapped() -> None:
            cstate.bootstrapped = True
            names = ('cinder', 'ceph', object_store.SERVICE_TYPE,
                     *(('cephx',) if ceph.cephx(cstate) else ()))
            for name in names:
                if name not in cstate.set_up:
                    cstate.set_up.append(name)
            self.paths.save_state(cstate)

        def nova_api_settings() -> None:
            if self.configure_nova_api(state, transport_url) and \
                    restart_api:
                restart_api()

        steps = [
            step('namespace', lambda: namespace.ensure(paths)),
            step('ovs-databases', lambda: network.create_databases(paths)),
            step('switch-settings',
                 lambda: network.configure_switch(paths, cstate)),
            step('bridges', lambda: network.add_bridges(paths, cstate)),
            step('ceph-monitor-store',
                 lambda: ceph.initialise_monitor(cstate, paths)),
            step('ceph-keys', lambda: ceph.create_keys(cstate, paths)),
            step('ceph-secret',
                 lambda: libvirt.define_ceph_secret(cstate, paths)),
            step('mariadb-data', lambda: mariadb.initialise(paths)),
            step('databases', lambda: mariadb.create_databases(
                paths, placement.DATABASE, neutron.DATABASE,
                cinder.DATABASE, *nova.DATABASES)),
            step('nova-api-settings', nova_api_settings),
            step('bootstrapped', mark_bootstrapped),
            step('hypervisor',
                 lambda: self._wait_for_hypervisor(state, timeout)),
            step('volume-service',
                 lambda: self._wait_for_volume_service(state, timeout)),
        ]
        if ceph_first:
            steps += [step('ceph-osd-store',
                           lambda: ceph.initialise_osd(paths)),
                      step('ceph-pool', lambda: ceph.create_pool(paths))]
        if first:
            steps += [
                set_up('placement',
                       lambda: placement.setup_commands(paths)),
                set_up('neutron', lambda: neutron.setup_commands(paths)),
                set_up('nova', lambda: nova.setup_commands(
                    paths, transport_url)),
                # Guests a wiped cloud of this state directory left
                # defined.
                step('old-guests', lambda: libvirt.forget_domains(
                    f'{paths.namespace}-'))]
        if cinder_first:
            steps.append(set_up('cinder',
                                lambda: cinder.setup_commands(paths)))
        if first or cinder_first or objects_first:
            # Find-or-create: one pass over every service of the layer.
            steps.append(step('accounts', lambda: accounts.create(state, {
                'placement': placement.endpoint_url(cstate),
                'network': neutron.endpoint_url(cstate),
                'volumev3': cinder.endpoint_url(cstate),
                object_store.SERVICE_TYPE: object_store.endpoint_url(
                    cstate)})))
        return steps

    def _wait_for_volume_service(self, state: layout_mod.CloudState,
                                 timeout: float) -> None:
        """Wait until cinder-volume is up (it reports its pool to the
        scheduler once its driver is ready)."""
        conn = bootstrap.admin_connection(state)
        try:
            waiting.wait_for(
                f'{cinder.VOLUME} reporting up',
                lambda: any(s.binary == cinder.VOLUME and s.state == 'up'
                            for s in conn.block_storage.services()),
                max(timeout, 120.0), interval=2.0,
                failed=lambda: self._exited(cinder.VOLUME))
        except (waiting.WaitFailed, waiting.WaitTimeout) as exc:
            raise self.supervisor.failure(cinder.VOLUME, str(exc)) from None
        finally:
            conn.close()

    def _wait_for_hypervisor(self, state: layout_mod.CloudState,
                             timeout: float) -> None:
        """Wait until the scheduler can place servers: the hypervisor is
        up in nova (its host mapped into the cell) and has inventory in
        placement."""
        conn = bootstrap.admin_connection(state)

        def placeable() -> Any:
            up = [h for h in conn.compute.hypervisors(details=True)
                  if h.state == 'up']
            return up and list(conn.placement.resource_providers())

        try:
            waiting.wait_for(
                'a hypervisor registered', placeable, max(timeout, 300.0),
                interval=3.0, failed=lambda: self._exited(nova.COMPUTE))
        except (waiting.WaitFailed, waiting.WaitTimeout) as exc:
            raise self.supervisor.failure(nova.COMPUTE, str(exc)) from None
        finally:
            conn.close()

    def _exited(self, name: str) -> str | None:
        return None if self.supervisor.pid(name) else 'exited'

    def _write_configs(self, state: layout_mod.CloudState,
                       cstate: paths_mod.ComputeState,
                       transport_url: str) -> None:
        paths = self.paths
        for name in ('placement', 'neutron', 'nova', 'cinder'):
            paths.config_dir(name).mkdir(mode=0o700, parents=True,
                                         exist_ok=True)
            (paths.service_dir(name) / 'locks').mkdir(exist_ok=True)
        ceph.write_config(cstate, paths,
                          object_store.config_section(state, cstate, paths))
        object_store.write_password(state, paths)
        paths.instances_dir.mkdir(mode=0o755, parents=True, exist_ok=True)
        placement.write_config(state, cstate, paths)
        neutron.write_config(state, cstate, paths, transport_url)
        neutron.copy_paste_config(paths)
        nova.write_config(state, cstate, paths, transport_url)
        cinder.write_config(state, cstate, paths, transport_url)
        libvirt.write_config(paths)

    def _set_up(self, commands: Iterable[common.Command],
                service: str) -> None:
        log = self.paths.log_dir / f'{service}-setup.log'
        for argv in commands:
            processes.run_checked([str(arg) for arg in argv], log,
                                  what=f'{service} set-up '
                                       f'({" ".join(map(str, argv[-3:]))})')

    def configure_nova_api(self, state: layout_mod.CloudState,
                           transport_url: str) -> bool:
        """Add messaging/placement/neutron settings to nova-api's config;
        True when the file changed (nova-api then needs a restart)."""
        path = self.layout.config_dir('nova') / 'nova.conf'
        document = ini.IniFile.load(path)
        changed = document.update(nova.api_settings(state, self.paths,
                                                     transport_url))
        if changed:
            document.save(path)
        return bool(changed)

    # ---------------------------------------------------------- down/status
    def down(self) -> list[tuple[str, bool]]:
        """Stop every process, delete the namespace; [(name, was_up)]."""
        cstate = self.state
        if cstate is None:
            return []
        rows = []
        if self.supervisor.pid('libvirtd'):
            # The guests power off while their volumes (Ceph) and network
            # still run: a destroyed guest lost what its database had just
            # written.  nova-compute stops first, or it would take a guest
            # that powers off under it for one its user stopped, and the
            # next up's nova-compute would not start it again
            # (resume_guests_state_on_host_boot: a hard reboot, which
            # defines the domain again).  Their definitions go: they would
            # outlive the cloud and make any next nova-compute refuse to
            # start ("hypervisor has existing instances").
            rows.append((nova.COMPUTE, self.supervisor.stop(nova.COMPUTE)))
            prefix = f'{self.paths.namespace}-'
            rows += [(f'guest {name}', True)
                     for name in libvirt.shut_down_domains(prefix)]
            libvirt.forget_domains(prefix)
        stopped = {name for name, _ in rows}
        rows += [(daemon.name, self.supervisor.stop(daemon.name))
                 for daemon in reversed(self.daemons(cstate))
                 if daemon.name not in stopped]
        if namespace.remove(self.paths):
            rows.append((f'namespace {self.paths.namespace}', True))
        return rows

    def status(self, control_ports: Iterable[int] = (), *,
               guest_ports: Iterable[int] = ()) -> list[Health]:
        cstate = self.state
        if cstate is None:
            return []
        return [daemons.health(self.supervisor, daemon) for daemon in
                self.daemons(cstate, control_ports,
                             guest_ports=guest_ports)]

    def memory_kib(self) -> int:
        """Resident memory of every process of the layer, its guests'
        qemu included."""
        cstate = self.state
        if cstate is None:
            return 0
        return sum(self.supervisor.rss_kib(daemon.name)
                   for daemon in self.daemons(cstate)) + self.guests()[1]

    def guests(self) -> tuple[int, int]:
        """(running guests of this cloud, their resident memory KiB)."""
        return libvirt.guest_rss_kib(f'{self.paths.namespace}-')

    def wipe(self) -> None:
        """Stop the layer and remove its files."""
        libvirt.forget_ceph_secret(self.paths)
        self.down()
        shutil.rmtree(self.paths.root, ignore_errors=True)
        shutil.rmtree(self.paths.instances_dir.parent, ignore_errors=True)


def _check_binaries() -> None:
    try:
        import libvirt  # noqa: F401
    except ImportError:
        raise daemons.ComputeError(
            'libvirt-python is missing: apt-get install libvirt-dev '
            'pkg-config, then .venv/bin/pip install -c constraints.txt '
            'libvirt-python') from None
    missing = sorted({package for binary, package in REQUIRED_BINARIES.items()
                      if shutil.which(binary) is None and not any(
                          (prefix / binary).exists() for prefix in
                          (paths_mod.pathlib.Path('/usr/sbin'),))})
    if missing:
        raise daemons.ComputeError(
            'the compute cloud needs the Debian packages '
            f'{" ".join(missing)} (tools/install-test-deps)')


def up_with_control_plane(
        local_cloud: controlplane.LocalCloud, *, timeout: float = 120.0,
        **up_args: Any,
) -> tuple[list[controlplane.StatusRow], list[Health]]:
    """``cloud up --compute``: the control plane (``LocalCloud.up`` with
    up_args), nova-api set up for servers, then the compute layer.

    Returns (control plane rows, [Health] of the compute layer).
    """
    if up_args.get('fresh'):
        ComputeLayer(local_cloud.layout).wipe()
    rows = local_cloud.up(timeout=timeout, **up_args)
    # a cloud that is up has its broker and state
    broker: rabbitmq.Broker = local_cloud.broker  # type: ignore[assignment]
    state: layout_mod.CloudState = local_cloud.state  # type: ignore[assignment]
    layer = ComputeLayer(local_cloud.layout)
    health = layer.up(
        state, broker.transport_url(),
        control_ports=list(state.ports.values()),
        guest_ports=guest_ports(local_cloud),
        timeout=timeout,
        restart_api=lambda: local_cloud.restart(['nova'], timeout))
    return rows, health


def guest_ports(local_cloud: controlplane.LocalCloud) -> list[int]:
    """The control plane's ports guests reach on the management network's
    gateway: the broker's, and the registry's when it runs (backup images
    are pulled from it)."""
    # a cloud that is up has its broker and state
    state: layout_mod.CloudState = local_cloud.state  # type: ignore[assignment]
    return [local_cloud.broker.port,  # type: ignore[union-attr]
            *([state.ports[controlplane.REGISTRY]] if state.registry
              else [])]


def down_with_control_plane(
        local_cloud: controlplane.LocalCloud) -> list[tuple[str, bool]]:
    """Stop the compute layer (namespace included), then the control
    plane; [(name, was_up)]."""
    return [*ComputeLayer(local_cloud.layout).down(), *local_cloud.down()]


def namespace_of(state_dir: pathlib.Path | str | None) -> str:
    """The network namespace of the compute-enabled local cloud in
    state_dir; [ComputeError] when it has no compute layer up."""
    layer = ComputeLayer(controlplane.LocalCloud(state_dir).layout)
    if layer.state is None:
        raise daemons.ComputeError(
            f'{state_dir} holds no compute-enabled local cloud (trovestack '
            'cloud up --compute --state-dir ...)')
    if not netns.exists(layer.paths.namespace):
        raise daemons.ComputeError(
            f'the compute cloud in {state_dir} is down (no namespace '
            f'{layer.paths.namespace}): trovestack cloud up --compute')
    return layer.paths.namespace


def is_enabled(local_cloud: controlplane.LocalCloud) -> bool:
    """True once the cloud in local_cloud's state directory has compute."""
    return ComputeLayer(local_cloud.layout).state is not None


def status_rows(
        health: Iterable[Health]) -> list[controlplane.StatusRow]:
    """(name, state, pid, where, crashes, last error) rows, as ``cloud
    status`` shows them."""
    return [(h.name, h.condition, h.pid or '', h.where, h.crashes,
             h.last_error) for h in health]
