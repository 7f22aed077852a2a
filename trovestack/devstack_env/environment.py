"""``trovestack devstack up/down/status``: staging, the container and
stack.sh chained, each step's outcome a Row.

One environment per name (default ``devstack``), its state under
$XDG_STATE_HOME/trovestack/devstack-env/<name>.  ``up`` converges: a
container whose stack.sh completed is left as it is; one whose stack.sh
failed (or never ran to its end) is removed and made again, since
stack.sh does not resume.
"""

import dataclasses
import os
import pathlib
from collections.abc import Callable
from collections.abc import Sequence

from trovestack.common import files
from trovestack.common import results
from trovestack.common.errors import UserError
from trovestack.common.results import Row
from trovestack.devstack_env import ceph
from trovestack.devstack_env import container
from trovestack.devstack_env import guest
from trovestack.devstack_env import layout
from trovestack.devstack_env import stack
from trovestack.devstack_env import staging
from trovestack.orchestration import kickstart

Progress = Callable[[str], None]
DEVSTACK_ENV = 'TROVESTACK_DEVSTACK_DIR'
DEFAULT_DEVSTACK = '/work/shared/devstack'


class StackFailed(UserError):
    """stack.sh ended with an error (the message says where)."""


@dataclasses.dataclass(frozen=True)
class Status:
    """An environment as it is now."""

    name: str
    state: str              # absent, running, leftovers
    systemd: str
    machine: str
    namespace: str
    address: str
    leader_pid: int
    stack: str              # not run, ok, failed (exit N)
    stack_phase: str
    stack_failing: str
    stack_seconds: float
    trove_api: str
    datastore_versions: str
    leftovers: str
    state_dir: str


def default_devstack_dir() -> pathlib.Path:
    return pathlib.Path(os.environ.get(DEVSTACK_ENV) or DEFAULT_DEVSTACK)


def _env_lock(paths: layout.EnvPaths) -> pathlib.Path:
    return files.key_lock_path(f'devstack-env-{paths.name}', str(paths.root))


def staged_rows(staged: staging.Staged) -> list[Row]:
    return [Row(a.kind, str(a.path),
                results.CREATED if a.built else results.UNCHANGED,
                a.detail + (f' ({a.seconds:.0f} s)' if a.built else ''))
            for a in staged.artifacts()]


def stage_only(*, checkout: pathlib.Path, devstack_dir: pathlib.Path,
               progress: Progress | None = None) -> list[Row]:
    devstack_dir = kickstart.check_devstack_dir(devstack_dir)
    staged = staging.stage(checkout=checkout, devstack_dir=devstack_dir,
                           services=stack.enabled_services(),
                           progress=progress)
    return staged_rows(staged)


def up(*, sample: pathlib.Path, checkout: pathlib.Path,
       devstack_dir: pathlib.Path, name: str = layout.DEFAULT_NAME,
       guest_image: pathlib.Path | None = None, placeholder: bool = False,
       progress: Progress | None = None) -> list[Row]:
    """Stage, build the guest image, boot, run stack.sh; [Row].
    ``guest_image``: a guest image file the plugin loads instead of the
    one built here (``guest.build``); ``placeholder``: neither (an empty
    image that boots nothing).
    StackFailed names the failing command and phase (the container stays
    up for a look inside)."""
    paths = layout.EnvPaths.of(name)
    devstack_dir = kickstart.check_devstack_dir(devstack_dir)
    if not sample.is_file():
        raise UserError(f'no sample {sample}; the samples are in '
                        f'{kickstart.SAMPLES_DIR}')
    if guest_image is not None and not guest_image.is_file():
        raise UserError(f'no guest image {guest_image}')
    staged = staging.stage(checkout=checkout, devstack_dir=devstack_dir,
                           services=stack.enabled_services(),
                           progress=progress)
    rows = staged_rows(staged)
    if guest_image is None and not placeholder:
        built = guest.build(sample, staged.sources.path / 'trove',
                            progress=progress)
        guest_image = pathlib.Path(built.path)
        rows.append(Row('guest-image', built.path,
                        results.UNCHANGED if built.skipped
                        else results.CREATED,
                        f'agent {built.agent_source}; '
                        f'{built.build_path}'))
    paths.root.mkdir(parents=True, exist_ok=True)
    with files.exclusive_lock(_env_lock(paths)):
        record = container.load(paths)
        previous = stack.load_result(paths)
        if record is not None and container.alive(record) and \
                previous is not None and previous.ok:
            rows.append(Row('stack.sh', paths.machine, results.UNCHANGED,
                            f'completed earlier in {previous.seconds:.0f} s'))
            return rows
        rows += container.stop(paths)
        paths.stack_record.unlink(missing_ok=True)
        ref = kickstart.current_branch(checkout)
        guest_files = (stack.guest_image_files(guest_image.resolve())
                       if guest_image is not None and not placeholder
                       else [])
        in_container = (stack.guest_image_path(guest_files[0])
                        if guest_files else None)
        conf = stack.local_conf(sample, address=container.ADDRESS,
                                machine=paths.machine,
                                plugin_repo=f'{stack.DEST}/'
                                f'{kickstart.plugin_name(checkout)}',
                                plugin_ref=ref, guest_image=in_container)

        def prepare(rootfs: pathlib.Path) -> None:
            stack.place_tree(rootfs, staged=staged, devstack_dir=devstack_dir,
                             checkout=checkout, local_conf_text=conf,
                             guest_files=guest_files, machine=paths.machine)

        binds = [container.Bind(str(staged.repo.path), staging.APT_MOUNT),
                 container.Bind(str(staged.wheels.path), staging.WHEEL_MOUNT),
                 container.Bind('/dev/net/tun', '/dev/net/tun', False)]
        booted = container.boot(paths, staged.rootfs.path, binds=binds,
                                prepare=prepare)
        rows.append(Row('container', paths.machine, results.CREATED,
                        f'systemd {booted.state} in {booted.seconds:.0f} s, '
                        f'{container.ADDRESS} in {paths.namespace}'))
        if progress is not None:
            progress('Ceph for Cinder\'s volumes: setting up')
        rows.append(Row('ceph', paths.machine, results.CREATED,
                        ceph.set_up(booted.record, paths.merged)))
        if progress is not None:
            progress(f'stack.sh running; its output: {paths.stack_log}')
        result = stack.run_stack(booted.record, paths,
                                 secrets=stack.secrets_of(conf))
    if not result.ok:
        raise StackFailed(
            f'stack.sh failed (exit {result.returncode}) after '
            f'{result.seconds:.0f} s in phase "{result.phase}": '
            f'{result.failing}; log: {result.log}; '
            f'"trovestack devstack down --name {name}" removes it')
    rows.append(Row('stack.sh', paths.machine, 'ran',
                    f'completed in {result.seconds:.0f} s'))
    for check, value in stack.trove_checks(booted.record):
        rows.append(Row('check', check, results.OK, value))
    return rows


def down(*, name: str = layout.DEFAULT_NAME,
         timeout: float = container.STOP_TIMEOUT) -> list[Row]:
    """unstack.sh and clean.sh when stack.sh ran, then the container and
    all it made; converges (nothing there: nothing done)."""
    paths = layout.EnvPaths.of(name)
    rows = []
    with files.exclusive_lock(_env_lock(paths)):
        record = container.load(paths)
        ran = stack.load_result(paths) is not None
        if record is not None and container.alive(record) and ran:
            for script in ('unstack.sh', 'clean.sh'):
                done = stack.run_script(record, script)
                rows.append(Row('devstack', script, 'ran' if
                                done.returncode == 0 else results.FAILED,
                                f'exit {done.returncode}'))
        rows += container.stop(paths, timeout=timeout)
        paths.stack_record.unlink(missing_ok=True)
    left = container.leftovers(paths)
    if left:
        raise UserError(f'left behind: {"; ".join(left)}')
    if not rows:
        rows.append(Row('environment', name, results.UNCHANGED,
                        'nothing to remove'))
    return rows


def _running(paths: layout.EnvPaths) -> container.Record:
    """The record of the running environment at ``paths``; UserError
    when there is none."""
    record = container.load(paths)
    if record is None or not container.alive(record):
        raise UserError(f'no running devstack environment {paths.name!r}: '
                        f'"trovestack devstack up --name {paths.name}" '
                        'starts it')
    return record


def execute(argv: Sequence[str], *, name: str = layout.DEFAULT_NAME,
            admin: bool = False, root: bool = False) -> int:
    """Run ``argv`` in the running environment ``name`` as the stack user
    (``root``: as root; ``admin``: with devstack's admin credentials),
    its output on this process's; the command's exit status."""
    record = _running(layout.EnvPaths.of(name))
    if not argv:
        raise UserError('no command given (trovestack devstack exec -- '
                        'COMMAND ...)')
    command = stack.admin_argv(argv) if admin else list(argv)
    done = container.run(record, command,
                         user=None if root else stack.STACK_USER,
                         env=None if root else {'HOME': stack.DEST},
                         stdin=None)
    return done.returncode


def tempest(regex: str, *, name: str = layout.DEFAULT_NAME,
            serial: bool = True) -> int:
    """Run devstack's tempest (its venv and tempest.conf, as lib/tempest
    and the plugin's test-config phase made them) on the tests ``regex``
    selects, in the running environment ``name``; tempest's exit status."""
    paths = layout.EnvPaths.of(name)
    record = _running(paths)
    result = stack.load_result(paths)
    if result is None or not result.ok:
        raise UserError(f'stack.sh has not completed in {name!r}: '
                        f'"trovestack devstack status --name {name}" says '
                        'where it stopped')
    argv = ['tox', '-evenv-tempest', '--', 'tempest', 'run',
            *(['--serial'] if serial else []), '--regex', regex]
    done = container.run(record, ['bash', '-c', f'cd {stack.DEST}/tempest '
                                  '&& exec "$@"', 'tempest', *argv],
                         user=stack.STACK_USER, env=stack.TEMPEST_ENV,
                         stdin=None)
    return done.returncode


def status(*, name: str = layout.DEFAULT_NAME,
           checks: bool = True) -> Status:
    paths = layout.EnvPaths.of(name)
    record = container.load(paths)
    result = stack.load_result(paths)
    running = record is not None and container.alive(record)
    left = [] if running else container.leftovers(paths)
    systemd = container.system_state(record) if record and running \
        else 'offline'
    api = versions = ''
    if running and record and checks and result is not None and result.ok:
        found = dict(stack.trove_checks(record))
        api, versions = found['trove-api'], found['datastore-versions']
    if result is None:
        stack_state = 'not run'
    else:
        stack_state = ('ok' if result.ok
                       else f'failed (exit {result.returncode})')
    return Status(
        name=name,
        state='running' if running else ('leftovers' if left else 'absent'),
        systemd=systemd, machine=paths.machine, namespace=paths.namespace,
        address=record.address if record else '',
        leader_pid=record.leader_pid if running and record else 0,
        stack=stack_state,
        stack_phase=result.phase if result else '',
        stack_failing=result.failing if result else '',
        stack_seconds=result.seconds if result else 0.0,
        trove_api=api, datastore_versions=versions,
        leftovers='; '.join(left), state_dir=str(paths.root))
