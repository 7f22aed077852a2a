import os
import signal
import subprocess
import time

import psutil
import pytest

from trovestack.images.guest import dib
from trovestack.images.guest import errors


@pytest.mark.parametrize('line, phase', [
    ('2026-11-23 16:39:07.719 | Running hooks from '
     '/tmp/dib_build.x/hooks/root.d', 'root.d'),
    ('Running hooks from /tmp/dib_build.x/hooks/post-install.d',
     'post-install.d'),
    ('2026 | Converting image using qemu-img convert', 'qemu-img convert'),
    ('2026 | Setting up systemd-timesyncd', None),
])
def test_phase_of(line, phase):
    assert dib.phase_of(line) == phase


def _fake_dib(tmp_path, monkeypatch, body):
    script = tmp_path / 'disk-image-create'
    script.write_text('#!/bin/sh\n' + body)
    script.chmod(0o755)
    monkeypatch.setattr(dib, 'disk_image_create', lambda: str(script))


def test_run_reports_one_line_per_phase(tmp_path, monkeypatch):
    _fake_dib(tmp_path, monkeypatch,
              'for p in root.d root.d install.d; do\n'
              '  echo "Running hooks from /t/hooks/$p"; echo noise\n'
              'done\n')
    lines = []
    dib.run([], {}, tmp_path / 'log', lines.append)
    phases = [line.split('] ')[1] for line in lines]
    assert phases == ['root.d', 'install.d', 'done']
    assert 'noise' in (tmp_path / 'log').read_text()


def test_run_failure_names_phase_and_log(tmp_path, monkeypatch):
    _fake_dib(tmp_path, monkeypatch,
              'echo "Running hooks from /t/hooks/install.d"; exit 3\n')
    with pytest.raises(errors.BuildError) as e:
        dib.run([], {}, tmp_path / 'log', lambda m: None)
    assert 'exit code 3 during install.d' in str(e.value)
    assert str(tmp_path / 'log') in str(e.value)


@pytest.mark.parametrize('line', [
    'dib-run-parts Running /tmp/in_target.d/install.d/30-trove-guest-agent',
    'dib-run-parts Sourcing environment file '
    '/tmp/in_target.d/install.d/../environment.d/10-x.bash',
])
def test_chroot_phases_are_recognised(line):
    assert dib.phase_of(line) == 'install.d'


def test_interrupted_run_stops_the_whole_build(tmp_path, monkeypatch):
    """Ctrl-C or SIGTERM (an exception in the reading loop) kills DIB and
    what it started, in its own session, before the work dir goes."""
    pid_file = tmp_path / 'child.pid'
    _fake_dib(tmp_path, monkeypatch,
              f'sleep 300 & echo $! > {pid_file}\n'
              'echo "Running hooks from /t/hooks/root.d"\n'
              'wait\n')

    def interrupt(message):
        raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        dib.run([], {}, tmp_path / 'log', interrupt)
    child = int(pid_file.read_text())
    deadline = time.monotonic() + 10
    while psutil.pid_exists(child) and (
            psutil.Process(child).status() != psutil.STATUS_ZOMBIE):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert 'stopped during root.d' in (tmp_path / 'log').read_text()


def _stray(tmp_path):
    tmp = tmp_path / 'tmp'
    for name in ('dib_build.AAA', 'dib_image.BBB', 'other.CCC'):
        (tmp / name).mkdir(parents=True)
    return tmp


def test_stray_dirs_of_a_gone_dib(tmp_path):
    tmp = _stray(tmp_path)
    assert dib.stray_dirs(str(tmp)) == [str(tmp / 'dib_build.AAA'),
                                        str(tmp / 'dib_image.BBB')]


@pytest.mark.parametrize('own_tmp, expected', [(False, 0), (True, 2)])
def test_no_stray_dirs_while_a_dib_works_there(tmp_path, own_tmp,
                                               expected):
    """A running disk-image-create may own any dib_* of its TMP_DIR: none
    is taken then; one working elsewhere does not count."""
    tmp = _stray(tmp_path)
    script = tmp_path / 'bin' / 'disk-image-create'
    script.parent.mkdir()
    script.write_text('#!/bin/sh\nsleep 300\n')
    script.chmod(0o755)
    env = dict(os.environ,
               TMP_DIR=str(tmp_path / 'elsewhere' if own_tmp else tmp))
    proc = subprocess.Popen(['/bin/sh', str(script)], env=env,
                            start_new_session=True)
    try:
        time.sleep(0.2)
        assert len(dib.stray_dirs(str(tmp))) == expected
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
