"""The guest under qemu: command line, data volume, serial console.

The guest boots from a throw-away overlay of the image (``snapshot=on``),
with a blank data volume as the second virtio disk (``/dev/vdb``, which
Trove's guest agent formats and mounts, as with a Cinder volume) and the
config drive as a CD-ROM.  The serial console goes to a file; cloud-init
user-data forwards the guest agent's journal and Docker's health events to
it, one prefixed line each (see :func:`user_data`).
"""

import dataclasses
import os
import pathlib
import re
import subprocess

from trovestack.common.errors import UserError
from trovestack.trove.trove_config import AGENT_UNIT

MARKER = 'TROVESTACK-VERIFY'
# qemu's translation block cache for TCG (MiB): the default makes qemu's
# RSS 1.5-2 GB, 128 MiB keeps it under 1 GB at a small speed cost.
TB_CACHE_MIB = 128

_FORWARD = ("%(source)s | sed -u 's/^/" + MARKER + " %(tag)s: /' "
            "> /dev/ttyS0")
# Without sudo's own lines: the agent runs many commands through sudo.
AGENT_LOG = _FORWARD % {
    # The agent's own output only: systemd's lines about its unit come
    # before the boot releases an agent that starts early.
    'source': ('journalctl -b -f -o cat _SYSTEMD_UNIT=' + AGENT_UNIT
               + " | grep --line-buffered -v -e pam_unix -e ' COMMAND='"),
    'tag': 'agent'}
DOCKER_HEALTH = _FORWARD % {
    'source': ("docker events --filter event=health_status "
               "--filter event=pull "
               "--format '{{.Actor.Attributes.name}} {{.Status}}'"),
    'tag': 'docker'}
# The database container's own output (its entrypoint initialising the
# datadir, the server's errors), from its creation on, across restarts.
DATABASE_LOG = _FORWARD % {
    'source': ('(since=0; while :; do '
               'if docker inspect database >/dev/null 2>&1; then '
               'docker logs --follow --since $since database 2>&1; '
               'since=$(date +%s); fi; sleep 5; done)'),
    'tag': 'database'}


def user_data(*, disable_agent: bool = False) -> str:
    """cloud-config that reports to the serial console: cloud-init done,
    every guest agent log line, Docker health and pull events, the database
    container's output. ``disable_agent``
    masks the agent before it starts (to see how a failure reads)."""
    lines = ['#cloud-config']
    if disable_agent:
        lines += ['bootcmd:',
                  '  - [systemctl, mask, --runtime, %s]' % AGENT_UNIT,
                  '  - [systemctl, stop, --no-block, %s]' % AGENT_UNIT]
    lines += [
        'runcmd:',
        '  - [systemd-run, --unit=trovestack-agent-log, sh, -c, %s]'
        % _yaml_quote(AGENT_LOG),
        '  - [systemd-run, --unit=trovestack-docker-health, '
        '-p, After=docker.service, -p, Wants=docker.service, sh, -c, %s]'
        % _yaml_quote(DOCKER_HEALTH),
        '  - [systemd-run, --unit=trovestack-database-log, '
        '-p, After=docker.service, -p, Wants=docker.service, sh, -c, %s]'
        % _yaml_quote(DATABASE_LOG),
        "  - [sh, -c, 'echo %s cloud-init done > /dev/ttyS0']" % MARKER,
    ]
    return '\n'.join(lines) + '\n'


def _yaml_quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def kvm_usable() -> bool:
    """/dev/kvm can be opened and the CPU has vmx/svm. (Nested KVM in a VM
    without them opens but makes no progress: measured on this project's
    machines.)"""
    if not os.access('/dev/kvm', os.R_OK | os.W_OK):
        return False
    with open('/proc/cpuinfo') as f:
        return bool(re.search(r'\b(vmx|svm)\b', f.read()))


@dataclasses.dataclass(frozen=True)
class GuestSpec:
    image: pathlib.Path
    volume: pathlib.Path
    config_drive: pathlib.Path
    console: pathlib.Path
    tap: str
    mac: str
    memory_mb: int = 1536
    cpus: int = 1


def create_volume(path: pathlib.Path, size_gb: int = 4) -> pathlib.Path:
    result = subprocess.run(['qemu-img', 'create', '-f', 'qcow2', str(path),
                             '%dG' % size_gb], capture_output=True, text=True)
    if result.returncode != 0:
        raise UserError('qemu-img create failed: %s' % result.stderr.strip())
    return path


def image_format(image: pathlib.Path) -> str:
    return 'raw' if pathlib.Path(image).suffix == '.raw' else 'qcow2'


def qemu_command(spec: GuestSpec, *, kvm: bool) -> list[str]:
    accel = 'kvm' if kvm else 'tcg,tb-size=%d' % TB_CACHE_MIB
    return [
        # -nodefaults: no VGA, floppy, parallel port or default NIC for the
        # guest kernel to probe (seconds each under TCG); only the devices
        # below.
        'qemu-system-x86_64', '-nodefaults', '-accel', accel,
        '-m', str(spec.memory_mb), '-smp', str(spec.cpus),
        '-display', 'none', '-monitor', 'none', '-no-reboot',
        '-serial', 'file:%s' % spec.console,
        '-drive', 'file=%s,if=virtio,format=%s,snapshot=on' % (
            spec.image, image_format(spec.image)),
        '-drive', 'file=%s,if=virtio,format=qcow2' % spec.volume,
        '-drive', 'file=%s,media=cdrom,if=ide,readonly=on' % (
            spec.config_drive),
        '-netdev', 'tap,id=net0,ifname=%s,script=no,downscript=no' % spec.tap,
        '-device', 'virtio-net-pci,netdev=net0,mac=%s' % spec.mac,
    ]


def tagged_lines(console_text: str, tag: str) -> list[str]:
    """Lines a forwarder tagged on the console (``MARKER tag: ...``)."""
    prefix = '%s %s: ' % (MARKER, tag)
    return [line.split(prefix, 1)[1].rstrip() for line in
            console_text.splitlines() if prefix in line]


def tail(lines: list[str], count: int) -> list[str]:
    return lines[-count:] if count else []


_KERNEL_TIME = re.compile(r'^\[\s*[\d.]+\]\s*')
CONSOLE_STAGES = (
    # (stage, regular expression on the console)
    ('boot', re.compile(r'Linux version \S+')),
    ('cloud-init', re.compile(MARKER + r' cloud-init done')),
    ('agent started', re.compile(MARKER + r' agent: ')),
    # an image pull finished (the registry path only): the image's name,
    # then "pull"
    ('image pulled', re.compile(MARKER + r' docker: \S+ pull\b')),
    ('database healthy',
     re.compile(MARKER + r' docker: database health_status: healthy')),
)


def console_stages(console_text: str) -> dict[str, str]:
    """{stage: the console line that shows it} for the stages seen."""
    seen = {}
    for stage, pattern in CONSOLE_STAGES:
        match = pattern.search(console_text)
        if match:
            start = console_text.rfind('\n', 0, match.start()) + 1
            end = console_text.find('\n', match.end())
            line = console_text[start:end if end >= 0 else None]
            seen[stage] = _KERNEL_TIME.sub('', line).replace(
                MARKER + ' ', '').strip()
    return seen
