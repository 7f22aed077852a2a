"""Fixtures that stub diskimage-builder and the host for builder unit tests."""

import hashlib
import pathlib

import pytest

from trovestack.imagebuild import builder
from trovestack.imagebuild import dib
from trovestack.imagebuild import guest_agent


@pytest.fixture(autouse=True)
def private_sweep(monkeypatch, tmp_path):
    """Sweeps see this test's work-dir registry and stray DIB dirs only,
    never the host's."""
    monkeypatch.setenv('TROVESTACK_WORKDIR_REGISTRY',
                       str(tmp_path / 'workdir-registry'))
    stray = tmp_path / 'stray-tmp'
    stray.mkdir()
    monkeypatch.setattr(dib, 'STRAY_DIR', str(stray))


class FakeDib:
    """Stands in for dib.run: writes an image and its .sha256 like DIB."""

    def __init__(self):
        self.calls = []

    def __call__(self, args, env, log_path, progress):
        self.calls.append((args, env))
        target = pathlib.Path(args[args.index('-o') + 1])
        image = target.with_name(target.name + '.qcow2')
        image.write_bytes(b'image %d' % len(self.calls))
        digest = hashlib.sha256(image.read_bytes()).hexdigest()
        pathlib.Path(str(image) + '.sha256').write_text(
            '%s  %s\n' % (digest, image.name))
        progress('[   0.0s] done')
        return 0.0


@pytest.fixture
def fake_dib(monkeypatch, tmp_path):
    fake = FakeDib()
    monkeypatch.setattr(dib, 'run', fake)
    monkeypatch.setattr(builder, '_check_host', lambda plan, shims: None)
    monkeypatch.setattr(guest_agent, 'prepare',
                        lambda *a, **k: tmp_path / 'wheelhouse')
    return fake


@pytest.fixture
def request_factory(tmp_path):
    def make(**kwargs):
        kwargs.setdefault('cache_dir', str(tmp_path / 'cache'))
        kwargs.setdefault('mirror', 'http://mirror.example/debian')
        return builder.BuildRequest(**kwargs)
    return make
