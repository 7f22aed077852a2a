"""verify_image: boot a guest image and take it through Trove's prepare.

Everything runs inside a network namespace created for the run: a tap
device (host side 10.99.0.1, guest 10.99.0.10 from network_data.json),
RabbitMQ bound to the tap address, optionally a registry, qemu, and the
control plane's side (:mod:`trovestack.images.verify.control`, Trove's own RPC
classes).  The stages, in the order a Trove instance goes through them:

    prepare sent -> boot -> cloud-init -> agent started ->
    agent first heartbeat -> (image pulled) -> database healthy -> ACTIVE ->
    database and user

``prepare`` is cast as soon as the guest is started, as trove-taskmanager
does right after nova's boot call (the message waits in the guest's queue),
so its time is the moment it was queued.  The guest agent of Trove 26 sends
no heartbeat before it has received ``prepare`` (begin_install is its first
one), so a missing first heartbeat means the agent never consumed it.
"""

import contextlib
import dataclasses
import json
import logging
import os
import pathlib
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any

from trovestack.common import ini
from trovestack.common import netns
from trovestack.common.errors import UserError
from trovestack.images import datastore as datastore_images
from trovestack.images.datastore import datastores
from trovestack.images.verify import configdrive
from trovestack.images.verify import guest as guest_vm
from trovestack.trove import trove_config

LOG = logging.getLogger(__name__)

NAMESPACE_PREFIX = 'trovestack-verify'
HOST_ADDRESS = '10.99.0.1'
GUEST_ADDRESS = '10.99.0.10/24'
GUEST_MAC = 'fa:16:3e:00:99:0a'
TAP = 'tap0'
BROKER_PORT = 5672
REGISTRY_PORT = 5000
DATABASE = 'verifydb'
DB_USER = 'verifyuser'
MANAGERS = {'mysql': 'mysql', 'mariadb': 'mariadb',
            'postgresql': 'postgresql'}
# Stages the control plane sees, in order; the console-only ones are
# reported when seen but a run does not fail on them alone.
STAGES = ('prepare sent', 'boot', 'cloud-init', 'agent started',
          'agent first heartbeat', 'image pulled', 'database healthy',
          'ACTIVE', 'database and user')
CONSOLE_ONLY = ('agent started', 'image pulled', 'database healthy')
WHY = {
    'boot': 'no kernel output on the serial console',
    'cloud-init': 'cloud-init did not finish (no marker from its runcmd)',
    'prepare sent': 'the control plane could not cast prepare',
    'agent first heartbeat': 'no heartbeat from the guest agent on the '
                             'conductor topic (it never consumed prepare)',
    'ACTIVE': 'the guest agent did not report the database HEALTHY',
    'database and user': 'the guest API did not create and list them',
}
# How the database image reaches the guest: baked into the guest image, or
# pulled from a registry started for the run (skopeo pushes it there).
DELIVERIES = ('embedded', 'registry')
PROGRESS_EVERY = 30.0
# Heartbeats carry a status's description (trove/instance/service_status.py:
# FAILED is 'failed to spawn', CRASHED 'crashed') -> the status's name.
FAILED_STATUSES = {'failed to spawn': 'FAILED', 'crashed': 'CRASHED'}
# The agent's unit is ordered right after cloud-init.service; the console
# "cloud-init done" marker comes later still (cloud-final, after
# multi-user.target), from the runcmd that starts the journal forwarder,
# which prints the unit's lines so far at once. An agent with no journal
# line this long after it will not start: fail early.
AGENT_START_GRACE = 90.0
# The guest's vCPUs: as the compute cloud's d3 flavor. Under TCG one vCPU
# made the boot to ACTIVE 178-186 s, two 102 s (the agent imports while
# cloud-init runs on the other).
GUEST_CPUS = 2
TAIL_LINES = 40


@dataclasses.dataclass
class Stage:
    name: str
    seconds: float | None      # since qemu started; None: not seen
    detail: str = ''


@dataclasses.dataclass
class VerifyResult:
    image: pathlib.Path
    datastore: str
    version: str
    delivery: str               # one of DELIVERIES
    accelerator: str            # tcg | kvm
    ok: bool
    stages: list[Stage]
    failed_stage: str | None = None
    reason: str = ''
    console_tail: list[str] = dataclasses.field(default_factory=list)
    agent_log_tail: list[str] = dataclasses.field(default_factory=list)
    databases: list[str] = dataclasses.field(default_factory=list)
    users: list[str] = dataclasses.field(default_factory=list)
    work_dir: pathlib.Path | None = None


class _Timeline:
    """Stage times since qemu started, reported once each."""

    def __init__(self, progress: Callable[[str], None]) -> None:
        self.start: float | None = None
        self.seen: dict[str, Stage] = {}
        self.progress = progress

    def elapsed(self) -> float:
        return 0.0 if self.start is None else time.monotonic() - self.start

    def mark(self, name: str, detail: str = '') -> None:
        if name in self.seen:
            return
        self.seen[name] = Stage(name, round(self.elapsed(), 1), detail)
        self.progress('[%7.1fs] %s%s' % (self.elapsed(), name,
                                         ': ' + detail if detail else ''))

    def next_missing(self) -> str | None:
        """The first stage after the last one seen that is missing."""
        last = max((STAGES.index(n) for n in self.seen), default=-1)
        for name in STAGES[last + 1:]:
            if name not in CONSOLE_ONLY:
                return name
        return None

    def stages(self) -> list[Stage]:
        return [self.seen.get(name, Stage(name, None)) for name in STAGES]


def _require_host() -> None:
    if os.geteuid() != 0:
        raise UserError('verify-image needs root (network namespace, tap)')
    missing = [tool for tool in ('qemu-system-x86_64', 'qemu-img', 'ip')
               if shutil.which(tool) is None]
    if missing:
        raise UserError('Missing tools: %s; install them with: apt-get '
                        'install qemu-system-x86 qemu-utils iproute2'
                        % ', '.join(missing))


def embedded_images(image: pathlib.Path | str) -> list[str]:
    """``datastore:version`` names the image build recorded as embedded
    (IMAGE.build.json, written by trove-image-builder)."""
    sidecar = pathlib.Path(str(image) + '.build.json')
    if not sidecar.exists():
        return []
    record = json.loads(sidecar.read_text())
    return [entry['name'] for entry in
            record.get('embedded_datastore_images') or []]


def _guest_config(datastore: str, docker_image: str, transport_url: str,
                  registries: list[str]) -> str:
    """trove-guestagent.conf as the operator's file that the taskmanager
    injects, from the project's one source of Trove instance settings."""
    settings = trove_config.InstanceSettings(
        docker_images={datastore: docker_image},
        insecure_registries=registries,
        guest_transport_url=transport_url)
    sections = trove_config.instance_config(settings)[
        trove_config.GUESTAGENT_CONF]
    sections['DEFAULT'].update({'control_exchange': 'trove', 'debug': 'True'})
    return ini.render(sections)


class _Control:
    """The control-plane child process and its event stream."""

    def __init__(self, namespace: netns.Namespace, spec: dict[str, Any],
                 log_path: pathlib.Path) -> None:
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self.log = open(log_path, 'w')
        # Popen[str] whose stdin and stdout are PIPEs (never None)
        self.proc: Any = namespace.popen(
            [sys.executable, '-m', 'trovestack.images.verify.control'],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log,
            text=True, env=dict(os.environ, PYTHONUNBUFFERED='1'))
        self.proc.stdin.write(  # type: ignore[union-attr]
            json.dumps(spec) + '\n')
        self.proc.stdin.flush()  # type: ignore[union-attr]
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            try:
                self.events.put(json.loads(line))
            except ValueError:
                LOG.debug('control: %s', line.rstrip())
        self.events.put({'event': 'exit'})

    def go(self) -> None:
        self.proc.stdin.write('go\n')
        self.proc.stdin.flush()

    def next_event(self, timeout: float) -> dict[str, Any] | None:
        try:
            return self.events.get(timeout=timeout)
        except queue.Empty:
            return None

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def _stop_process(proc: subprocess.Popen[Any], timeout: float = 20) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def check_datastore_image(image: pathlib.Path | str, datastore: str,
                          version: str, use_registry: bool) -> None:
    """UserError, before anything starts, when the guest would have no
    image of datastore:version: not embedded in ``image``, or (registry)
    none that build-datastore-image can make."""
    name = '%s:%s' % (datastore, version)
    if not use_registry and name in embedded_images(image):
        return
    try:
        datastores.find(datastore, version)
    except UserError as e:
        if use_registry:
            raise
        raise UserError('%s has no embedded datastore image %s, and none '
                        'can be built here: %s' % (image, name, e)) from None
    if not use_registry:
        raise UserError(
            '%s has no embedded datastore image %s; rebuild it with '
            'trove-image-builder --embed-datastore-image %s, or pass '
            '--registry' % (image, name, name))


def _deliver(stack: contextlib.ExitStack, namespace: netns.Namespace,
             work: pathlib.Path, datastore: str, version: str, delivery: str,
             image: pathlib.Path,
             progress: Callable[[str], None]) -> tuple[str, list[str]]:
    """(docker image repository the guest runs, insecure registries)."""
    repository = trove_config.LOCAL_REPOSITORY.format(datastore=datastore)
    if delivery == 'embedded':
        return repository, []
    from trovestack.cloud import registry

    built = datastore_images.build(datastore, version, progress=progress)
    reg = registry.start(work / 'registry', host=HOST_ADDRESS,
                         port=REGISTRY_PORT, netns=namespace.name)
    stack.callback(registry.stop, work / 'registry')
    registry.push(built.path, reg.address, built.repository, built.tag,
                  netns=namespace.name)
    progress('pushed %s:%s to the registry at %s' % (
        built.repository, built.tag, reg.address))
    return '%s/%s' % (reg.address, built.repository), [reg.address]


def verify_image(image: pathlib.Path | str, datastore: str, version: str, *,
                 timeout: float = 1800.0, use_registry: bool = False,
                 disable_agent: bool = False, memory_mb: int = 1536,
                 cpus: int = GUEST_CPUS,
                 work_dir: pathlib.Path | None = None,
                 progress: Callable[[str], None] | None = None,
                 agent_start_grace: float = AGENT_START_GRACE
                 ) -> VerifyResult:
    """Boot ``image`` and take it through prepare to ACTIVE; see the
    module docstring. Never raises for a guest that fails: the result says
    which stage never happened (a guest agent without a log line
    ``agent_start_grace`` seconds after cloud-init is one). Raises
    UserError for bad input or host."""
    progress = progress or (lambda message: None)
    image = pathlib.Path(image).absolute()
    if not image.is_file():
        raise UserError('No such image: %s' % image)
    if datastore not in MANAGERS:
        raise UserError('Unknown datastore %r; valid: %s' % (
            datastore, ', '.join(MANAGERS)))
    _require_host()
    check_datastore_image(image, datastore, version, use_registry)
    kvm = guest_vm.kvm_usable()
    deadline = time.monotonic() + timeout
    netns.delete_stale(NAMESPACE_PREFIX)
    own_work = work_dir is None
    work = pathlib.Path(work_dir or tempfile.mkdtemp(
        prefix='trovestack-verify-'))
    work.mkdir(parents=True, exist_ok=True)
    timeline = _Timeline(progress)
    delivery = 'registry' if use_registry else 'embedded'
    result = VerifyResult(image, datastore, version, delivery,
                          'kvm' if kvm else 'tcg', False, [], work_dir=work)
    try:
        with netns.namespace(netns.owned_name(NAMESPACE_PREFIX)) as ns, \
                contextlib.ExitStack() as stack:
            _run(ns, stack, work, image, datastore, version, delivery,
                 disable_agent, memory_mb, cpus, kvm, deadline, timeline,
                 result, progress, agent_start_grace)
    finally:
        result.stages = timeline.stages()
        if own_work and result.ok:
            shutil.rmtree(work, ignore_errors=True)
            result.work_dir = None
    return result


def _run(ns: netns.Namespace, stack: contextlib.ExitStack, work: pathlib.Path,
         image: pathlib.Path, datastore: str, version: str, delivery: str,
         disable_agent: bool, memory_mb: int, cpus: int, kvm: bool,
         deadline: float, timeline: _Timeline, result: VerifyResult,
         progress: Callable[[str], None], agent_start_grace: float) -> None:
    from trovestack.cloud import rabbitmq

    netns.add_tap(ns, TAP, '%s/24' % HOST_ADDRESS)
    progress('namespace %s: %s on %s, guest %s' % (
        ns.name, TAP, HOST_ADDRESS, GUEST_ADDRESS))
    broker = rabbitmq.start(work / 'rabbitmq', host=HOST_ADDRESS,
                            port=BROKER_PORT, netns=ns.name)
    stack.callback(rabbitmq.stop, work / 'rabbitmq')
    progress('RabbitMQ ready on %s:%d' % (HOST_ADDRESS, BROKER_PORT))
    docker_image, registries = _deliver(stack, ns, work, datastore, version,
                                        delivery, image, progress)
    manager = MANAGERS[datastore]
    spec: dict[str, Any] = {
        'instance_id': _instance_id(), 'datastore': datastore,
        'manager': manager, 'version': version, 'memory_mb': memory_mb,
        'cpus': cpus,
        'transport_url': broker.transport_url(),
        'insecure_registries': registries, 'work_dir': str(work),
        'guest_config': _guest_config(manager, docker_image,
                                      broker.transport_url(), registries),
        'database': DATABASE, 'user': DB_USER,
        'user_password': _password(),
    }
    control = _Control(ns, spec, work / 'control.log')
    stack.callback(control.stop)
    event = control.next_event(timeout=max(1.0, deadline - time.monotonic()))
    if not event or event['event'] != 'files':
        raise UserError('The control plane did not start; see %s'
                        % (work / 'control.log'))
    network = configdrive.GuestNetwork(GUEST_MAC, GUEST_ADDRESS, HOST_ADDRESS)
    drive = configdrive.write(
        work / 'config-drive.iso', instance_id=spec['instance_id'],
        hostname='verify-%s' % datastore, injected_files=event['files'],
        network=network,
        user_data=guest_vm.user_data(disable_agent=disable_agent))
    spec_vm = guest_vm.GuestSpec(
        image=image, volume=guest_vm.create_volume(work / 'volume.qcow2'),
        config_drive=drive, console=work / 'console.log', tap=TAP,
        mac=GUEST_MAC, memory_mb=memory_mb, cpus=cpus)
    qemu_log = open(work / 'qemu.log', 'w')
    stack.callback(qemu_log.close)
    qemu = ns.popen(guest_vm.qemu_command(spec_vm, kvm=kvm),
                    stdin=subprocess.DEVNULL, stdout=qemu_log,
                    stderr=subprocess.STDOUT)
    stack.callback(_stop_process, qemu)
    timeline.start = time.monotonic()
    progress('qemu started (%s, %d MiB, %d vCPUs); timeout in %.0f s' % (
        result.accelerator, memory_mb, cpus, deadline - time.monotonic()))
    control.go()
    _watch(control, qemu, spec_vm.console, deadline, timeline, result,
           progress, agent_start_grace)
    console = _read(spec_vm.console)
    result.console_tail = guest_vm.tail(
        [line for line in console.splitlines() if line.strip()], TAIL_LINES)
    result.agent_log_tail = guest_vm.tail(
        guest_vm.tagged_lines(console, 'agent'), TAIL_LINES)


def _read(path: pathlib.Path | str) -> str:
    try:
        return pathlib.Path(path).read_text(errors='replace')
    except FileNotFoundError:
        return ''


def _instance_id() -> str:
    import uuid

    return str(uuid.uuid4())


def _password() -> str:
    import secrets

    return secrets.token_urlsafe(12)


def _watch(control: '_Control', qemu: subprocess.Popen[str],
           console: pathlib.Path, deadline: float, timeline: '_Timeline',
           result: VerifyResult, progress: Callable[[str], None],
           agent_start_grace: float) -> None:
    next_report = time.monotonic() + PROGRESS_EVERY
    while True:
        for stage, line in guest_vm.console_stages(_read(console)).items():
            timeline.mark(stage, line.strip()[:80])
        event = control.next_event(timeout=2.0)
        while event is not None:
            if _handle(event, timeline, result):
                return
            event = control.next_event(timeout=0)
        now = time.monotonic()
        failure = None
        if qemu.poll() is not None:
            failure = 'qemu exited with status %s' % qemu.returncode
        elif control.proc.poll() is not None:
            failure = 'the control plane exited with status %s' % (
                control.proc.returncode)
        elif now >= deadline:
            failure = 'timed out'
        elif _agent_never_started(timeline, agent_start_grace):
            failure = ('no guest agent log line %d s after cloud-init '
                       'finished (the boot releases the agent right after '
                       'cloud-init)' % agent_start_grace)
        if failure:
            result.failed_stage = timeline.next_missing()
            result.reason = '%s: %s' % (  # None: no reason
                failure,
                WHY.get(result.failed_stage, ''))  # type: ignore[arg-type]
            return
        if now >= next_report:
            next_report = now + PROGRESS_EVERY
            progress('[%7.1fs] waiting for %s (%.0f s left)' % (
                timeline.elapsed(), timeline.next_missing(),
                deadline - now))


def _agent_never_started(timeline: _Timeline, grace: float) -> bool:
    done = timeline.seen.get('cloud-init')
    return (done is not None and 'agent started' not in timeline.seen
            # a stage seen has its time
            and timeline.elapsed() - done.seconds > grace)  # type: ignore[operator]


def _handle(event: dict[str, Any], timeline: '_Timeline',
            result: VerifyResult) -> bool:
    """Apply one control-plane event; True when the run is over."""
    kind = event['event']
    if kind == 'prepare':
        timeline.mark('prepare sent', 'device %s' % event['device_path'])
    elif kind == 'heartbeat':
        status = event['status']
        timeline.mark('agent first heartbeat', 'status %s' % status)
        if status == 'healthy':
            timeline.mark('ACTIVE', 'service status HEALTHY')
        elif status in FAILED_STATUSES:
            result.failed_stage = 'ACTIVE'
            result.reason = ('the guest agent reported %s: prepare failed '
                             'in the guest' % FAILED_STATUSES[status])
            return True
    elif kind == 'database':
        result.databases = event['names']
    elif kind == 'user':
        result.users = event['names']
    elif kind == 'done':
        timeline.mark('database and user', '%s and %s listed back' % (
            DATABASE, DB_USER))
        result.ok = True
        return True
    return False
