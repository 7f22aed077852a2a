"""Fixtures that stub diskimage-builder and the host for builder unit tests."""

import hashlib
import pathlib

import pytest

from trovestack.images.guest import agent_layer
from trovestack.images.guest import builder
from trovestack.images.guest import dib
from trovestack.images.guest import guest_agent
from trovestack.images.guest import host


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


class FakeAgentStep:
    """Stands in for agent_layer.replace_agent: appends the wheel's name
    to the image (or fails, with ``fail`` set)."""

    def __init__(self):
        self.calls = []
        self.fail = None

    def __call__(self, image, image_format, wheel, workdir, log):
        self.calls.append((pathlib.Path(image), image_format,
                           pathlib.Path(wheel), pathlib.Path(workdir)))
        if self.fail:
            raise self.fail
        with open(image, 'ab') as out:
            out.write(b' + ' + pathlib.Path(wheel).read_bytes())


@pytest.fixture
def fake_dib(monkeypatch, tmp_path):
    fake = FakeDib()
    monkeypatch.setattr(dib, 'run', fake)
    monkeypatch.setattr(builder, '_check_host', lambda plan, shims: None)
    monkeypatch.setattr(guest_agent, 'prepare',
                        lambda *a, **k: tmp_path / 'wheelhouse')
    return fake


@pytest.fixture
def fake_agent_step(monkeypatch, tmp_path, fake_dib):
    """The agent-only path without root: the agent wheel is a file whose
    content is the agent identity, the agent step appends it."""
    fake = FakeAgentStep()
    monkeypatch.setattr(agent_layer, 'replace_agent', fake)
    for name in ('check_root', 'check_tools', 'check_free_space'):
        monkeypatch.setattr(host, name, lambda *a, **k: None)

    def prepare_agent(source, ref, path, cache_dir, *args, **kwargs):
        wheels = tmp_path / 'agent-wheels' / hashlib.sha256(
            guest_agent.source_identity(source, ref, path).encode(),
        ).hexdigest()[:8]
        wheels.mkdir(parents=True, exist_ok=True)
        (wheels / 'trove-26.0.0-py3-none-any.whl').write_text(
            guest_agent.source_identity(source, ref, path))
        return wheels
    monkeypatch.setattr(guest_agent, 'prepare_agent', prepare_agent)
    return fake


@pytest.fixture
def request_factory(tmp_path):
    def make(**kwargs):
        kwargs.setdefault('cache_dir', str(tmp_path / 'cache'))
        kwargs.setdefault('mirror', 'http://mirror.example/debian')
        return builder.BuildRequest(**kwargs)
    return make
