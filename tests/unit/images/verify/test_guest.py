"""verify-image's guest side: user-data, qemu command line, console stages,
timeline and failure naming (no qemu, no namespace)."""

import pathlib

import yaml

from trovestack.images.verify import guest
from trovestack.images.verify import run

CONSOLE = """\
[    0.000000] Linux version 6.1.0-56-amd64 (debian-kernel@lists.debian.org)
[  202.2] cloud-init[267]: Cloud-init v. 22.4.2 running 'init-local'
TROVESTACK-VERIFY cloud-init done
TROVESTACK-VERIFY agent: Started guest-agent.service - OpenStack Trove agent.
TROVESTACK-VERIFY agent: 2026-11-23 ERROR oslo_messaging.rpc.server boom
TROVESTACK-VERIFY docker: 10.99.0.1:5000/trovestack/postgresql pull
TROVESTACK-VERIFY docker: database health_status: starting
TROVESTACK-VERIFY docker: database health_status: healthy
"""


def test_user_data_is_cloud_config_that_reports_to_the_console():
    data = guest.user_data()
    assert data.startswith('#cloud-config\n')
    config = yaml.safe_load(data)
    assert 'bootcmd' not in config
    commands = [' '.join(step) for step in config['runcmd']]
    assert any('journalctl' in c and guest.AGENT_UNIT in c
               and '/dev/ttyS0' in c for c in commands)
    assert any('event=health_status' in c and 'event=pull' in c
               for c in commands)
    assert any('docker logs --follow' in c and 'database: ' in c
               for c in commands)
    assert any('cloud-init done' in c for c in commands)


def test_disabled_agent_is_masked_before_it_starts():
    config = yaml.safe_load(guest.user_data(disable_agent=True))
    assert ['systemctl', 'mask', '--runtime', guest.AGENT_UNIT] in (
        config['bootcmd'])


def test_console_stages_and_tagged_lines():
    stages = guest.console_stages(CONSOLE)
    assert set(stages) == {'boot', 'cloud-init', 'agent started',
                           'image pulled', 'database healthy'}
    assert stages['image pulled'] == (
        'docker: 10.99.0.1:5000/trovestack/postgresql pull')
    assert stages['boot'].startswith('Linux version 6.1.0')
    assert stages['agent started'].startswith('agent: Started guest-agent')
    agent = guest.tagged_lines(CONSOLE, 'agent')
    assert agent[-1].endswith('boom')
    assert guest.console_stages('Booting...\n') == {}


def test_qemu_command_tcg_small_translation_cache():
    spec = guest.GuestSpec(image=pathlib.Path('/i/g.qcow2'),
                           volume=pathlib.Path('/w/v.qcow2'),
                           config_drive=pathlib.Path('/w/cd.iso'),
                           console=pathlib.Path('/w/console.log'),
                           tap='tap0', mac='fa:16:3e:00:00:01')
    argv = guest.qemu_command(spec, kvm=False)
    assert argv[argv.index('-accel') + 1] == 'tcg,tb-size=%d' % (
        guest.TB_CACHE_MIB)
    line = ' '.join(argv)
    assert 'file=/i/g.qcow2,if=virtio,format=qcow2,snapshot=on' in line
    assert 'file=/w/cd.iso,media=cdrom' in line
    assert 'ifname=tap0,script=no' in line
    assert 'file:/w/console.log' in line
    assert '-nodefaults' in argv
    kvm = guest.qemu_command(spec, kvm=True)
    assert kvm[kvm.index('-accel') + 1] == 'kvm'


def test_timeline_names_the_first_missing_stage_after_the_last_seen():
    timeline = run._Timeline(progress=lambda message: None)
    timeline.start = 0
    assert timeline.next_missing() == 'prepare sent'
    for name in ('prepare sent', 'boot', 'cloud-init', 'agent started'):
        timeline.mark(name)
    assert timeline.next_missing() == 'agent first heartbeat'
    timeline.mark('agent first heartbeat')
    # 'image pulled' and 'database healthy' are console-only: the run
    # waits for ACTIVE.
    assert timeline.next_missing() == 'ACTIVE'
    assert [s.name for s in timeline.stages()] == list(run.STAGES)


def test_failed_heartbeat_ends_the_run():
    timeline = run._Timeline(progress=lambda message: None)
    result = run.VerifyResult(pathlib.Path('g.qcow2'), 'mariadb', '11.8',
                              'embedded', 'tcg', False, [])
    assert not run._handle({'event': 'heartbeat', 'status': 'building'},
                           timeline, result)
    # Trove sends FAILED's description, not its name.
    assert run._handle({'event': 'heartbeat', 'status': 'failed to spawn'},
                       timeline, result)
    assert result.failed_stage == 'ACTIVE'
    assert 'FAILED' in result.reason


def test_guest_config_names_the_image_and_broker():
    text = run._guest_config('mariadb', 'trovestack/mariadb',
                             'rabbit://u:p@10.99.0.1:5672/trove', [])
    assert '[mariadb]\ndocker_image = trovestack/mariadb' in text
    assert 'transport_url = rabbit://u:p@10.99.0.1:5672/trove' in text
    assert 'control_exchange = trove' in text


def test_an_agent_that_never_starts_fails_early(monkeypatch):
    timeline = run._Timeline(progress=lambda message: None)
    timeline.start = 0
    clock = [100.0]
    monkeypatch.setattr(run.time, 'monotonic', lambda: clock[0])
    timeline.mark('cloud-init')
    clock[0] += run.AGENT_START_GRACE - 1
    assert not run._agent_never_started(timeline, run.AGENT_START_GRACE)
    clock[0] += 2
    assert run._agent_never_started(timeline, run.AGENT_START_GRACE)
    timeline.mark('agent started')
    assert not run._agent_never_started(timeline, run.AGENT_START_GRACE)
