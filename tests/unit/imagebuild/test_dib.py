import pytest

from trovestack.imagebuild import dib
from trovestack.imagebuild import errors


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
