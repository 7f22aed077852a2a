"""stack.sh inside the container: local.conf, the tree devstack expects
under /opt/stack, the run, and where a failed run stopped.

local.conf is the sample's, made by ``orchestration.kickstart`` (this
checkout enabled as the plugin), followed by what running offline in a
container needs: the sources are already there (no clone, ERROR_ON_CLONE
makes a missing one fail instead of reaching for a git server), services
that download at run time are off, and compute runs without kernel help
(qemu TCG, Open vSwitch's userspace datapath).
"""

import dataclasses
import json
import pathlib
import re
import shutil
import subprocess
import time
from collections.abc import Sequence

from trovestack.common import files
from trovestack.common.errors import UserError
from trovestack.devstack_env import ceph
from trovestack.devstack_env import container
from trovestack.devstack_env import layout
from trovestack.devstack_env import staging
from trovestack.images.guest import builder
from trovestack.orchestration import kickstart

STACK_USER = 'stack'
DEST = staging.STACK_HOME
DEVSTACK = f'{DEST}/devstack'
LOGFILE = f'{DEST}/logs/stack.sh.log'
GUEST_IMAGE = f'{DEST}/trovestack-placeholder.qcow2'
# Where a guest image built on the host is copied to (the stack user's),
# with the records trove-image-builder keeps beside it.
GUEST_DIR = f'{DEST}/trovestack-guest'
GUEST_RECORDS = ('.sha256', '.md5', builder.BUILD_HASH_SUFFIX,
                 builder.SIDECAR_SUFFIX)
STACK_TIMEOUT = 4 * 3600.0
# What running devstack's tempest by hand needs: devstack's venv (tox) on
# the path and the constraints lib/tempest made tempest's venv with (tox
# recreates the venv when they differ, losing trove-tempest-plugin).
TEMPEST_CONSTRAINTS = f'{DEST}/requirements/upper-constraints.txt'
TEMPEST_ENV = {
    'HOME': DEST,
    'PATH': f'{DEST}/data/venv/bin:/usr/local/bin:/usr/bin:/bin',
    'UPPER_CONSTRAINTS_FILE': TEMPEST_CONSTRAINTS,
    'TOX_CONSTRAINTS_FILE': TEMPEST_CONSTRAINTS,
}
# Repositories devstack clones that are not on PyPI, made by this project:
# os-test-images (lib/tempest generates tempest's image format test images
# with it; ours makes blank qcow2 and raw images).
STAND_INS = {'os-test-images': pathlib.Path(__file__).with_name(
    'os_test_images')}

# devstack's default ENABLED_SERVICES (stackrc) ...
DEVSTACK_DEFAULT_SERVICES = (
    'key', 'n-api', 'n-cpu', 'n-cond', 'n-sch', 'n-novnc', 'n-api-meta',
    'placement-api', 'placement-client', 'g-api', 'c-sch', 'c-api', 'c-vol',
    'ovn-controller', 'ovn-northd', 'ovs-vswitchd', 'ovsdb-server', 'q-svc',
    'q-ovn-agent', 'horizon', 'rabbit', 'tempest', 'mysql', 'etcd3', 'dstat')
# ... less what downloads while stack.sh runs (etcd, novnc from git) or is
# not needed (dstat, horizon; Cinder's backup service).  Cinder's volume
# service stores volumes in the container's Ceph cluster (devstack_env.ceph:
# devstack's LVM backend needs device-mapper and iSCSI, which this kernel
# lacks); tempest and trove-tempest-plugin come from the staged sources.
DISABLED_SERVICES = ('c-bak', 'n-novnc', 'horizon', 'etcd3', 'dstat')
PLUGIN_SERVICES = ('trove', 'tr-api', 'tr-tmgr', 'tr-cond')


def enabled_services() -> list[str]:
    return [s for s in DEVSTACK_DEFAULT_SERVICES
            if s not in DISABLED_SERVICES] + list(PLUGIN_SERVICES)


def offline_settings(address: str, machine: str,
                     guest_image: str | None = None) -> list[str]:
    """The localrc lines added after the sample's own; ``machine``: the
    container's name (its Ceph cluster's ids); ``guest_image``: where a
    guest image built on the host is in the container."""
    return [
        '# Added by "trovestack devstack up": stack.sh in a container',
        '# without a network (doc/devstack-plugin.md).',
        f'HOST_IP={address}',
        f'SERVICE_HOST={address}',
        f'DEST={DEST}',
        f'LOGFILE={LOGFILE}',
        'LOG_COLOR=False',
        'VERBOSE=True',
        # The repositories are in place, made from PyPI sdists: never
        # clone (ERROR_ON_CLONE fails on one that is missing), but do
        # install (OFFLINE=True would skip apt-get and pip).
        'OFFLINE=False',
        'RECLONE=False',
        'ERROR_ON_CLONE=True',
        f'PIP_FIND_LINKS={staging.WHEEL_MOUNT}',
        'PIP_UPGRADE=False',
        # Downloads at run time: no etcd, no cirros, no novnc.
        *[f'disable_service {s}' for s in DISABLED_SERVICES],
        # Tempest from its staged repository, in a venv within the staged
        # constraints, with the staged trove-tempest-plugin.
        'TEMPEST_BRANCH=master',
        f'TEMPEST_VENV_UPPER_CONSTRAINTS={TEMPEST_CONSTRAINTS}',
        f'TEMPEST_PLUGINS={DEST}/trove-tempest-plugin',
        # No cirros to download: the placeholder stands in as the image
        # tempest's configuration needs (lib/tempest stops without one and
        # skips every image whose line has "ari" in it: every MariaDB
        # guest image).  devstack uploads it again on each stack.sh, as it
        # does cirros.
        'DOWNLOAD_DEFAULT_IMAGES=False',
        f'IMAGE_URLS=file://{GUEST_IMAGE}',
        'MYSQL_GATHER_PERFORMANCE=False',
        # No KVM that works, no openvswitch kernel module.
        'LIBVIRT_TYPE=qemu',
        'OVS_DATAPATH_TYPE=netdev',
        'ENABLE_KSM=False',
        # Cinder's volumes in the container's Ceph cluster.
        *ceph.localrc_lines(machine),
        # The plugin: no guest image build (it downloads a distribution):
        # one built on the host is loaded and registered instead, its
        # embedded datastore images used (quay.io is out of reach), or a
        # placeholder that boots nothing.
        *([f'TROVE_GUEST_IMAGE={guest_image}',
           'TROVE_DATASTORE_IMAGE_SOURCE=embedded'] if guest_image
          else [f'TROVE_GUEST_IMAGE={GUEST_IMAGE}']),
    ]


def local_conf(sample: pathlib.Path, *, address: str, machine: str,
               plugin_repo: str, plugin_ref: str | None,
               guest_image: str | None = None) -> str:
    """The sample's local.conf with this checkout as the plugin, then the
    container's settings at the end of its localrc section."""
    try:
        text = sample.read_text()
    except OSError as e:
        raise UserError(f'cannot read sample {sample}: {e.strerror}') from e
    extra = '\n'.join(offline_settings(address, machine, guest_image))
    # A header first: a sample without headers is all localrc, and one
    # with them merges its localrc lines into this section.
    combined = (f'[[local|localrc]]\n{text.rstrip()}\n\n'
                f'[[local|localrc]]\n{extra}\n')
    return kickstart.render_local_conf(
        combined, sample_name=str(sample),
        plugin=kickstart.plugin_name(), repo=plugin_repo, ref=plugin_ref)


# systemd drop-ins for what this kernel lacks, placed in the container
# (devstack and its units stay as they are):
# - iscsid, which nova restarts for os-brick: no iSCSI here (no
#   /sys/class/iscsi_transport).  A unit whose condition fails starts
#   "successfully" without running: skipped, not failed.
# - nvmf-autoconnect (nvme-cli's, a dependency of ceph-osd) loads
#   nvme-fabrics, which this kernel lacks: it failed and left systemd
#   "degraded".
# - ksm.service (qemu's, for kernel same-page merging) writes to
#   /sys/kernel/mm/ksm, read-only in a container: it failed and left
#   systemd "degraded".
# - ovn-controller creates br-int with the kernel datapath unless told
#   otherwise, and devstack does not pass OVS_DATAPATH_TYPE on to it:
#   without the openvswitch module that bridge never exists.  The setting
#   goes in just before each start (devstack wipes the database first).
# - libvirtd puts each guest in cgroup v1 controllers, read-only in the
#   container ("Failed to create v1 controller cpu for group: Read-only
#   file system" and nova's build failed): qemu.conf, which devstack
#   edits after the package wrote it, is told to use none before each
#   start.
# - ovs-vswitchd: on the userspace datapath guest TCP through a tap needs
#   userspace TSO (as on the compute cloud, cloud/compute/network.py); it
#   is read when the daemon starts.
CONTAINER_DROPINS = {
    'iscsid.service': (
        '[Unit]\n'
        '# Added by trovestack devstack: no iSCSI in this kernel.\n'
        'ConditionPathExists=/sys/class/iscsi_transport\n'),
    'nvmf-autoconnect.service': (
        '[Unit]\n'
        '# Added by trovestack devstack: no nvme-fabrics in this kernel\n'
        '# (nvme-cli comes with ceph-osd).\n'
        'ConditionPathExists=/dev/nvme-fabrics\n'),
    'ksm.service': (
        '[Unit]\n'
        '# Added by trovestack devstack: /sys is read-only here.\n'
        'ConditionPathIsReadWrite=/sys/kernel/mm/ksm\n'),
    'ovn-controller.service': (
        '[Service]\n'
        '# Added by trovestack devstack: no openvswitch module, br-int\n'
        '# uses the userspace datapath as OVS_DATAPATH_TYPE=netdev says.\n'
        'ExecStartPre=/usr/bin/ovs-vsctl --no-wait set Open_vSwitch . '
        'external-ids:ovn-bridge-datapath-type=netdev\n'),
    'ovs-vswitchd.service': (
        '[Service]\n'
        '# Added by trovestack devstack: guest TCP on the userspace\n'
        '# datapath.\n'
        'ExecStartPre=/usr/bin/ovs-vsctl --no-wait set Open_vSwitch . '
        'other_config:userspace-tso-enable=true\n'),
    'libvirtd.service': (
        '[Service]\n'
        '# Added by trovestack devstack: the cgroup controllers are\n'
        '# read-only in this container.\n'
        "ExecStartPre=/bin/sh -c 'grep -qxF \"cgroup_controllers = [ ]\" "
        '/etc/libvirt/qemu.conf || echo "cgroup_controllers = [ ]" '
        ">> /etc/libvirt/qemu.conf'\n"),
}

# -- the tree under /opt/stack --------------------------------------------


def _stack_ids(rootfs: pathlib.Path) -> tuple[int, int]:
    for line in (rootfs / 'etc' / 'passwd').read_text().splitlines():
        fields = line.split(':')
        if fields[0] == STACK_USER:
            return int(fields[2]), int(fields[3])
    raise UserError(f'the rootfs {rootfs} has no {STACK_USER} user')


def _chown_tree(path: pathlib.Path, uid: int, gid: int) -> None:
    subprocess.run(['chown', '-R', f'{uid}:{gid}', str(path)], check=True)


def place_tree(rootfs: pathlib.Path, *, staged: staging.Staged,
               devstack_dir: pathlib.Path, checkout: pathlib.Path,
               local_conf_text: str,
               machine: str,
               guest_files: Sequence[pathlib.Path] = ()) -> list[str]:
    """Copy devstack, the repositories and the plugin into the
    container's /opt/stack (as the stack user's); the names placed.
    ``machine``: the container's name, for devstack's local.sh hook
    (the libvirt secret of its Ceph cluster)."""
    dest = rootfs / DEST.lstrip('/')
    uid, gid = _stack_ids(rootfs)
    placed = []
    for source in sorted(staged.sources.path.iterdir()):
        _copy(source, dest / source.name)
        placed.append(source.name)
    _copy(staged.requirements.path / 'requirements', dest / 'requirements')
    placed.append('requirements')
    _copy(devstack_dir, dest / 'devstack')
    subprocess.run(['chmod', '-R', 'u+w', str(dest / 'devstack')], check=True)
    if not (dest / 'devstack' / '.git').exists():
        # stack.sh records `git log -1` of its own tree: a checkout without
        # its history (an export) becomes a repository of one commit.
        _one_commit(dest / 'devstack', f'devstack as found in {devstack_dir}')
    placed.append('devstack')
    for name, source in STAND_INS.items():
        target = dest / name
        if not target.exists():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns(
                '__pycache__'))
            _one_commit(target, f'trovestack\'s stand-in for {name}')
        placed.append(name)
    plugin = dest / kickstart.plugin_name()
    if not plugin.exists():
        # devstack clones the plugin's committed state: so does this.
        subprocess.run(['git', 'clone', '--quiet', '--no-hardlinks',
                        str(checkout), str(plugin)], check=True,
                       capture_output=True)
    placed.append(plugin.name)
    (dest / 'devstack' / 'local.conf').write_text(local_conf_text)
    hook = dest / 'devstack' / 'local.sh'
    hook.write_text(ceph.local_sh(machine))
    hook.chmod(0o755)
    (dest / 'logs').mkdir(exist_ok=True)
    image = rootfs / GUEST_IMAGE.lstrip('/')
    if not image.exists():
        _placeholder_image(image)
    for path in guest_files:
        target = rootfs / GUEST_DIR.lstrip('/') / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        _copy(path, target)
    for unit, text in CONTAINER_DROPINS.items():
        dropin = rootfs / 'etc/systemd/system' / f'{unit}.d'
        dropin = dropin / 'trovestack.conf'
        dropin.parent.mkdir(parents=True, exist_ok=True)
        dropin.write_text(text)
    _chown_tree(dest, uid, gid)
    return placed


def _one_commit(tree: pathlib.Path, message: str) -> None:
    git = ['git', '-C', str(tree), '-c', 'user.name=trovestack',
           '-c', 'user.email=trovestack@localhost',
           '-c', 'init.defaultBranch=master']
    for args in (['init', '-q'], ['add', '-A', '-f', '.'],
                 ['commit', '-q', '-m', message]):
        subprocess.run([*git, *args], check=True, capture_output=True)


def _copy(source: pathlib.Path, target: pathlib.Path) -> None:
    if target.exists():
        return
    subprocess.run(['cp', '-a', '--reflink=auto', str(source), str(target)],
                   check=True)


def guest_image_files(image: pathlib.Path) -> list[pathlib.Path]:
    """A guest image file built on the host and the builder's records
    beside it (its sidecar names the embedded datastore images)."""
    found = [image] + [image.with_name(image.name + suffix)
                       for suffix in GUEST_RECORDS]
    return [path for path in found if path.is_file()]


def guest_image_path(image: pathlib.Path) -> str:
    """Where the plugin finds ``image`` in the container."""
    return f'{GUEST_DIR}/{image.name}'


def _placeholder_image(path: pathlib.Path) -> None:
    """A small empty qcow2: what the plugin loads and registers in place
    of a guest image it cannot build offline (it boots nothing)."""
    if shutil.which('qemu-img') is None:
        raise UserError('qemu-img is missing: run tools/install-test-deps')
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', str(path),
                    '1G'], check=True)


# -- the run ---------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class StackResult:
    """How a stack.sh run ended."""

    returncode: int
    seconds: float
    phase: str          # the last echo_summary reached
    failing: str        # the command that failed ('' on success)
    tail: str           # the last lines of its log
    log: str            # stack.sh's output on the host

    @property
    def ok(self) -> bool:
        return self.returncode == 0


_SUMMARY = re.compile(r"echo_summary\s+(?P<text>.+?)\s*$")
_XTRACE = re.compile(r'^(?:\S+ \S+ \| )?\++\s?(?P<cmd>\S.*)$')
_DIE = re.compile(r'\[ERROR\]\s*(?P<where>.*)$')
_TIMESTAMP = re.compile(r'^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+ \| ')


def analyse(text: str, *, tail_lines: int = 25) -> tuple[str, str, str]:
    """(phase, failing command, tail) of a stack.sh log: the last
    echo_summary; die's message, else the last command traced before the
    exit trap with the last thing it printed; and the log's last lines."""
    lines = [_TIMESTAMP.sub('', line) for line in text.splitlines()]
    phase = ''
    for line in lines:
        match = _SUMMARY.search(line)
        if match and line.lstrip().startswith('+'):
            phase = match.group('text').strip('\'"')
    end = len(lines)
    for index, line in enumerate(lines):
        traced = _XTRACE.match(line)
        if line.strip() == 'Error on exit' or ':exit_trap:' in line or (
                traced and traced.group('cmd').split()[-1:] == ['exit_trap']):
            end = index
            break
    before = lines[:end]
    tail = '\n'.join(lines[-tail_lines:])
    for line in reversed(before):
        match = _DIE.search(line)
        if match:
            return phase, match.group('where').strip(), tail
    for index in range(len(before) - 1, -1, -1):
        match = _XTRACE.match(before[index])
        if match:
            command = ' '.join(match.group('cmd').split())
            printed = [line.strip() for line in before[index + 1:]
                       if line.strip()]
            return phase, (f'{command} -> {printed[-1]}' if printed
                           else command), tail
    return phase, '', tail


_SECRET = re.compile(r'^\s*(?:export\s+)?\w*(?:PASSWORD|TOKEN|SECRET)\w*='
                     r'(?P<value>[^\s$#]+)\s*$')


def secrets_of(local_conf_text: str) -> list[str]:
    """The literal password and token values a local.conf sets."""
    found = {match.group('value').strip('\'"')
             for match in map(_SECRET.match, local_conf_text.splitlines())
             if match}
    return sorted(value for value in found if value)


def redact(text: str, secrets: Sequence[str]) -> str:
    """``text`` with every secret replaced by ``***``."""
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, '***')
    return text


def run_stack(record: container.Record, paths: layout.EnvPaths, *,
              secrets: Sequence[str] = (),
              timeout: float = STACK_TIMEOUT) -> StackResult:
    """Run stack.sh as the stack user; its result, also saved in the
    environment's stack.json."""
    started = time.monotonic()
    with open(paths.stack_log, 'wb') as out:
        proc = container.popen(
            record, ['bash', '-c', f'cd {DEVSTACK} && exec ./stack.sh'],
            user=STACK_USER, env={'HOME': DEST}, stdout=out)
        try:
            returncode = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            returncode = -1
    seconds = round(time.monotonic() - started, 1)
    text = paths.stack_log.read_text(errors='replace')
    phase, failing, tail = analyse(text)
    # What is shown and kept outside the log never carries a password.
    failing, tail = redact(failing, secrets), redact(tail, secrets)
    if returncode == 0:
        failing = ''
    elif returncode == -1:
        failing = f'(no end within {timeout:g} s) {failing}'
    result = StackResult(returncode, seconds, phase, failing, tail,
                         str(paths.stack_log))
    save_result(paths, result)
    return result


def save_result(paths: layout.EnvPaths, result: StackResult) -> None:
    files.write_atomic(paths.stack_record,
                       json.dumps(dataclasses.asdict(result), indent=2))


def load_result(paths: layout.EnvPaths) -> StackResult | None:
    try:
        return StackResult(**json.loads(paths.stack_record.read_text()))
    except (OSError, ValueError, TypeError):
        return None


def run_script(record: container.Record, script: str, *,
               timeout: float = 1800.0) -> subprocess.CompletedProcess[str]:
    """A devstack script (unstack.sh, clean.sh) as the stack user."""
    return container.run(
        record, ['bash', '-c', f'cd {DEVSTACK} && ./{script}'],
        user=STACK_USER, env={'HOME': DEST}, capture_output=True, text=True,
        timeout=timeout)


def admin_argv(argv: Sequence[str]) -> list[str]:
    """``argv`` run with devstack's admin credentials (openrc admin
    admin) in its environment."""
    return ['bash', '-c', f'source {DEVSTACK}/openrc admin admin '
            '>/dev/null 2>&1 && exec "$@"', 'bash', *argv]


def as_admin(record: container.Record, command: str, *,
             timeout: float = 300.0) -> subprocess.CompletedProcess[str]:
    """A shell command run in the container as the stack user with
    devstack's admin credentials (openrc admin admin)."""
    return container.run(
        record, admin_argv(['bash', '-c', command]), user=STACK_USER,
        env={'HOME': DEST}, capture_output=True, text=True, timeout=timeout)


def trove_checks(record: container.Record) -> list[tuple[str, str]]:
    """(check, result) pairs: Trove's API answering, and the datastore
    versions Trove has, asked inside the container as devstack's admin."""
    checks = []
    api = container.run(
        record, ['curl', '-s', '-o', '/dev/null', '-w', '%{http_code}',
                 f'http://{record.address}:8779/'],
        capture_output=True, text=True, timeout=60)
    checks.append(('trove-api', f'HTTP {api.stdout.strip() or "none"}'))
    listing = as_admin(
        record, 'for d in $(openstack datastore list -f value -c Name); '
        'do openstack datastore version list "$d" -f value '
        '-c Name | sed "s/^/$d:/"; done')
    versions = ' '.join(listing.stdout.split()) or listing.stderr.strip()
    checks.append(('datastore-versions', versions or '(none)'))
    return checks

