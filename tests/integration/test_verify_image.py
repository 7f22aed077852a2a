"""trovestack verify-image against real parts: a DIB-built guest image with
an embedded MariaDB 11.8 image, qemu (TCG), RabbitMQ and a registry in a
network namespace, Trove's own RPC classes; and a guest whose agent never
starts.

Needs root and the packages from tools/install-image-build-deps plus
rabbitmq-server, docker-registry, skopeo, genisoimage. The guest image is
written to the image builder's cache and rebuilt only when its inputs
change (build hash), so later runs go straight to booting. Each boot takes
minutes under TCG; ``-m 'not guest_boot'`` skips this module.
"""

import json
import os
import pathlib
import signal
import subprocess
import time

import pytest

from tests import helpers
from tests.integration import guest_images
from trovestack.common import netns
from trovestack.images.guest import host
from trovestack.images.verify import run

pytestmark = pytest.mark.guest_boot

EMBEDDED = guest_images.EMBEDDED
REQUIRED = ('prepare sent', 'boot', 'cloud-init', 'agent first heartbeat',
            'ACTIVE', 'database and user')


def _namespaces():
    return {path.name for path in netns.NETNS_DIR.glob(
        run.NAMESPACE_PREFIX + '-*')} if netns.NETNS_DIR.is_dir() else set()


@pytest.fixture(scope='module')
def guest_host():
    try:
        host.check_root()
        host.check_tools(device_mapper=host.has_device_mapper(),
                         extra={'qemu-system-x86_64': 'qemu-system-x86',
                                'genisoimage': 'genisoimage',
                                'skopeo': 'skopeo',
                                'docker-registry': 'docker-registry'})
    except Exception as e:
        pytest.fail('%s (run tools/install-test-deps)' % e)


@pytest.fixture(scope='module')
def embedded_image(guest_host):
    """The container-mode guest image with MariaDB 11.8 embedded, kept in
    the image builder's cache between runs."""
    return guest_images.embedded_mariadb_image()


def _verify(image, datastore, *args, timeout=2400):
    before = _namespaces()
    if '--timeout' not in args:
        args += ('--timeout', str(timeout))
    result = helpers.run('trovestack', 'verify-image', image,
                         '--datastore', datastore, '-f', 'json', *args,
                         check=False, timeout=timeout + 300)
    # Whatever happened, the run removed its namespace (and with it the
    # tap, qemu, RabbitMQ and the registry it started inside).
    assert _namespaces() <= before, result.stderr
    return result


def _stages(result):
    assert result.returncode == 0, result.stderr[-6000:]
    rows = json.loads(result.stdout)
    return {row['Stage']: row for row in rows}


def test_embedded_mariadb_reaches_active(embedded_image, tmp_path):
    work = tmp_path / 'work'
    stages = _stages(_verify(embedded_image, EMBEDDED, '--work-dir', work))
    for name in REQUIRED:
        assert stages[name]['Seconds'] is not None, (name, stages)
    # The agent is released after cloud-init's network stage: its first
    # heartbeat and the end of cloud-init's final stage come in either
    # order, each after the boot.
    order = [stages[name]['Seconds'] for name in REQUIRED
             if name != 'cloud-init']
    assert order == sorted(order), stages
    assert stages['boot']['Seconds'] < stages['cloud-init']['Seconds']
    assert 'verifydb' in stages['database and user']['Detail']
    assert 'HEALTHY' in stages['ACTIVE']['Detail']
    # Loaded into the image at build time: nothing is loaded at boot.
    console = (work / 'console.log').read_text(errors='replace')
    assert 'trove-embedded-images: loading' not in console


@pytest.mark.extra_instance
@pytest.mark.parametrize('datastore', ['postgresql:17', 'mariadb:10.11',
                                       'postgresql:15'])
def test_datastore_images_through_the_registry(embedded_image, datastore):
    """Datastore images pulled from the run's registry by the same guest
    image, after prepare, to ACTIVE.  Opt-in: CI's PostgreSQL 17 instance
    is the compute cloud's (trove-tempest-plugin's basic scenario), and
    its backups come from the compute cloud's registry."""
    stages = _stages(_verify(embedded_image, datastore, '--registry'))
    for name in REQUIRED:
        assert stages[name]['Seconds'] is not None, (name, stages)
    name = datastore.split(':')[0]
    pulled = stages['image pulled']
    assert 'trovestack/%s' % name in pulled['Detail'], stages
    assert (stages['agent first heartbeat']['Seconds'] <= pulled['Seconds']
            <= stages['ACTIVE']['Seconds']), stages


def test_disabled_agent_names_the_missing_heartbeat(embedded_image,
                                                    tmp_path):
    work = tmp_path / 'work'
    # The run stops 20 s after cloud-init without an agent line (90 s by
    # default); the timeout only bounds a boot that never gets that far.
    result = _verify(embedded_image, EMBEDDED, '--disable-guest-agent',
                     '--agent-start-grace', '20', '--timeout', '900',
                     '--work-dir', work, timeout=900)
    assert result.returncode == 1, result.stderr
    err = result.stderr
    assert 'stage "agent first heartbeat" never happened' in err, err
    assert 'no heartbeat from the guest agent' in err, err
    assert 'no guest agent log line 20 s after cloud-init' in err, err
    assert 'Serial console (last' in err, err
    console = (work / 'console.log').read_text(errors='replace')
    # The tail shown is the real console's: its last line is in it.
    last = [line for line in console.splitlines() if line.strip()][-1]
    assert last.rstrip() in err, err
    assert run.guest_vm.MARKER + ' cloud-init done' in console
    assert not any(p for p in os.listdir('/proc') if p.isdigit()
                   and _is_our_qemu(p, work))


def test_ctrl_c_stops_everything_it_started(embedded_image, tmp_path):
    """Ctrl-C (SIGINT to the terminal's process group) while the guest
    boots: exit 130, and qemu, RabbitMQ, the tap and the namespace are
    gone."""
    work = tmp_path / 'work'
    before = _namespaces()
    command = subprocess.Popen(
        [str(helpers.BIN / 'trovestack'), 'verify-image', str(embedded_image),
         '--datastore', EMBEDDED, '--work-dir', str(work)],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, start_new_session=True,
        # As from a terminal: a test lane started in the background (bin/
        # run-tests) runs with SIGINT ignored, which children inherit.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 600
        while not _our_processes(work, b'qemu-system'):
            assert command.poll() is None, command.communicate()
            assert time.monotonic() < deadline, 'qemu never started'
            time.sleep(1)
        assert _namespaces() - before, 'no namespace while qemu runs'
        os.killpg(command.pid, signal.SIGINT)
        out, err = command.communicate(timeout=180)
    finally:
        if command.poll() is None:
            os.killpg(command.pid, signal.SIGKILL)
            command.wait()
    assert command.returncode == 130, err
    assert 'Traceback' not in err, err
    assert _namespaces() <= before, err
    assert not _our_processes(work), err


def _our_processes(work, program=b''):
    """Processes whose command line or environment names ``work`` (qemu,
    RabbitMQ's Erlang VM, the registry), optionally only ``program``."""
    found = []
    for pid in filter(str.isdigit, os.listdir('/proc')):
        try:
            cmdline = pathlib.Path('/proc', pid, 'cmdline').read_bytes()
            environ = pathlib.Path('/proc', pid, 'environ').read_bytes()
        except OSError:
            continue
        if (str(work).encode() in cmdline + environ
                and program in cmdline):
            found.append(int(pid))
    return found


def _is_our_qemu(pid, work):
    try:
        cmdline = pathlib.Path('/proc', pid, 'cmdline').read_bytes()
    except OSError:
        return False
    return b'qemu-system' in cmdline and str(work).encode() in cmdline


def test_unknown_datastore_is_one_line_error(tmp_path):
    image = tmp_path / 'empty.qcow2'
    subprocess.run(['qemu-img', 'create', '-f', 'qcow2', str(image), '1G'],
                   check=True, capture_output=True)
    result = helpers.run('trovestack', 'verify-image', image, '--datastore',
                         'oracle:19', check=False)
    assert result.returncode == 1
    assert "Unknown datastore 'oracle'" in result.stderr
