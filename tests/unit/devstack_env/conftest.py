"""Unit tests never reach the host's namespaces, cgroups or nspawn state:
their names are global (a test's ``stop`` once took down a real
environment of the same name)."""

import pytest

from trovestack.common import netns
from trovestack.devstack_env import container


@pytest.fixture(autouse=True)
def private_host_paths(monkeypatch, tmp_path_factory):
    root = tmp_path_factory.mktemp('host')
    monkeypatch.setattr(container, 'CGROUP_ROOT', root / 'cgroup')
    monkeypatch.setattr(container, 'NSPAWN_RUN', root / 'nspawn')
    monkeypatch.setattr(netns, 'NETNS_DIR', root / 'netns')
    return root
