"""The fake devstack library keeps devstack's semantics; the image fetcher
downloads only what matches the checksum."""

import functools
import hashlib
import http.server
import os
import subprocess
import sys
import threading

import pytest

from tests.devstack import harness

FUNCTIONS = harness.REPO / 'tests' / 'devstack' / 'fake-devstack' / 'functions'
FETCH = harness.REPO / 'devstack' / 'tools' / 'fetch_guest_image.py'


def bash(tmp_path, script, **env):
    full_env = {'PATH': os.environ['PATH'],
                'FAKE_DEVSTACK_STATE': str(tmp_path / 'state'), **env}
    return subprocess.run(
        ['bash', '-c', f'set -o nounset; source {FUNCTIONS}; {script}'],
        env=full_env, capture_output=True, text=True, check=False,
        cwd=tmp_path)


def test_iniset_creates_replaces_and_iniget_reads(tmp_path):
    conf = tmp_path / 'a.conf'
    result = bash(tmp_path, f'''
        iniset {conf} DEFAULT debug True
        iniset {conf} database connection "sqlite:///x?a=1&b=2"
        iniset {conf} DEFAULT debug False
        iniget {conf} DEFAULT debug
        iniget {conf} database connection
        iniget {conf} database missing
        ini_has_option {conf} DEFAULT debug && echo has
        ini_has_option {conf} DEFAULT nope || echo hasnt
    ''')
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        'False', 'sqlite:///x?a=1&b=2', '', 'has', 'hasnt']
    assert conf.read_text().count('debug') == 1


@pytest.mark.parametrize('value, default, expected', [
    ('yes', 'False', 'True'), ('TRUE', 'False', 'True'), ('1', 'False',
                                                           'True'),
    ('no', 'True', 'False'), ('0', 'True', 'False'),
    ('', 'True', 'True'), ('maybe', 'False', 'False'),
])
def test_trueorfalse(tmp_path, value, default, expected):
    result = bash(tmp_path, f'trueorfalse {default} FLAG', FLAG=value)
    assert result.stdout.strip() == expected


def test_service_lists(tmp_path):
    result = bash(tmp_path, '''
        ENABLED_SERVICES=key,g-api; DISABLED_SERVICES=""
        is_service_enabled trove || echo "trove off"
        enable_service tr-api tr-api
        echo "$ENABLED_SERVICES"
        is_service_enabled trove && echo "trove on via tr-*"
        disable_service g-api
        echo "$ENABLED_SERVICES"
        enable_service g-api
        echo "$ENABLED_SERVICES"
    ''')
    assert result.stdout.splitlines() == [
        'trove off', 'key,g-api,tr-api', 'trove on via tr-*', 'key,tr-api',
        'key,tr-api']


def test_die_and_die_if_not_set(tmp_path):
    result = bash(tmp_path, 'false; die $LINENO "it broke"; echo after')
    assert result.returncode == 1
    assert '[ERROR]' in result.stderr and 'it broke' in result.stderr
    assert 'after' not in result.stdout
    result = bash(tmp_path, 'x=$(false); die_if_not_set $LINENO x "no x"')
    assert result.returncode != 0 and 'no x' in result.stderr
    result = bash(tmp_path, 'x=1; die_if_not_set $LINENO x "no x"; echo ok')
    assert result.stdout.strip() == 'ok'


def test_run_process_and_stop_process(tmp_path):
    result = bash(tmp_path, '''
        ENABLED_SERVICES=svc
        run_process svc "sleep 300"
        first=$(cat "$SERVICE_DIR/svc.pid")
        run_process svc "sleep 300"
        [[ "$(cat "$SERVICE_DIR/svc.pid")" == "$first" ]] && echo same
        run_process off "sleep 300"
        [[ -f "$SERVICE_DIR/off.pid" ]] || echo "disabled not started"
        stop_process svc
        kill -0 "$first" 2>/dev/null || echo stopped
        stop_process svc && echo "second stop ok"
    ''')
    assert result.stdout.splitlines() == [
        'same', 'disabled not started', 'stopped', 'second stop ok']


@pytest.fixture
def web(tmp_path):
    served = tmp_path / 'www'
    served.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler,
                                directory=str(served))
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield served, f'http://127.0.0.1:{server.server_address[1]}'
    server.shutdown()


def fetch(url, output, sha256):
    return subprocess.run([sys.executable, str(FETCH), url, '--output',
                           str(output), '--sha256', sha256],
                          capture_output=True, text=True, check=False)


def test_fetch_guest_image_verifies_checksum(tmp_path, web):
    served, base = web
    (served / 'guest.qcow2').write_bytes(b'image' * 1000)
    good = hashlib.sha256(b'image' * 1000).hexdigest()
    output = tmp_path / 'images' / 'guest.qcow2'

    bad = fetch(f'{base}/guest.qcow2', output, '0' * 64)
    assert bad.returncode == 1
    assert 'expected 0000' in bad.stderr
    assert not output.parent.exists() or not any(output.parent.iterdir())

    ok = fetch(f'{base}/guest.qcow2', output, good.upper())
    assert ok.returncode == 0, ok.stderr
    assert output.read_bytes() == b'image' * 1000

    again = fetch(f'{base}/guest.qcow2', output, good)
    assert 'up to date' in again.stdout

    missing = fetch(f'{base}/nothing.qcow2', tmp_path / 'n.qcow2', good)
    assert missing.returncode == 1
    assert len(missing.stderr.strip().splitlines()) == 1
