"""The container's Ceph cluster: the order of its set-up and what a
refusing monitor does, with the container's commands stood in for (the
real cluster runs in tests/integration/test_real_devstack.py)."""

import subprocess

import pytest

from trovestack.devstack_env import ceph
from trovestack.devstack_env import container


def _record():
    return container.Record(
        name='ut', machine='trovestack-ut', namespace='trovestack-ds-ut',
        lower='/l', merged='/m', address='10.208.0.2', cgroups=[])


class FakeContainer:
    """container.run: every command succeeds with empty output (as
    ``ceph auth get-or-create -o`` does) except the listed answers."""

    def __init__(self, refusals=0):
        self.argvs = []
        self.refusals = refusals

    def __call__(self, record, argv, **kwargs):
        self.argvs.append(list(argv))
        out, code = '', 0
        if argv[0] == 'ceph' and self.refusals:
            self.refusals -= 1
            code = 1
            out = 'Error EPERM: problem getting command descriptions'
        elif argv[:1] == ['ceph'] and 'create' in argv and 'osd' in argv \
                and 'pool' not in argv:
            out = '0\n'
        return subprocess.CompletedProcess(argv, code, out, '')


@pytest.fixture
def fake(monkeypatch):
    runner = FakeContainer()
    monkeypatch.setattr(container, 'run', runner)
    monkeypatch.setattr(ceph.waiting.time, 'sleep', lambda s: None)
    return runner


def test_set_up_installs_makes_and_starts_in_order(fake, tmp_path):
    summary = ceph.set_up(_record(), tmp_path)
    assert 'pool volumes' in summary
    commands = [' '.join(a[:3]) for a in fake.argvs]
    order = [commands.index(c) for c in (
        'apt-get update -q', 'ceph-mon --conf /etc/ceph/ceph.conf',
        'systemctl enable --now')]
    assert order == sorted(order)
    # Cinder's keyring is the stack user's and private; the daemons' the
    # ceph user's; the OSD is made after its key exists.
    assert ['chown', 'stack:stack', ceph.KEYRINGS['client.cinder']] in \
        fake.argvs
    assert ['chmod', '600', ceph.KEYRINGS['client.cinder']] in fake.argvs
    keys = max(i for i, a in enumerate(fake.argvs) if 'get-or-create' in a)
    mkfs = next(i for i, a in enumerate(fake.argvs)
                if a[0] == 'ceph-osd' and '--mkfs' in a)
    assert keys < mkfs
    assert (tmp_path / 'etc/ceph/ceph.conf').read_text() == \
        ceph.config_text('trovestack-ut')


def test_a_refusing_monitor_is_asked_again(fake, tmp_path):
    fake.refusals = 2
    ceph.set_up(_record(), tmp_path)
    gets = [a for a in fake.argvs if 'get-or-create' in a]
    assert len(gets) == len(ceph.KEYRINGS) + 2


def test_a_failing_install_names_the_step(fake, monkeypatch, tmp_path):
    def run(record, argv, **kwargs):
        return subprocess.CompletedProcess(
            argv, 100, '', 'E: Unable to locate package ceph-osd\n')

    monkeypatch.setattr(container, 'run', run)
    with pytest.raises(ceph.CephError,
                       match='apt-get update failed .exit 100.: E: Unable'):
        ceph.set_up(_record(), tmp_path)
