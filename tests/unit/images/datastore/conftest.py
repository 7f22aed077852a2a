"""Fixtures of the datastore image unit tests."""

import pytest


@pytest.fixture(autouse=True)
def private_sweep(monkeypatch, tmp_path):
    """Sweeps see this test's work-dir registry only, never the host's."""
    monkeypatch.setenv('TROVESTACK_WORKDIR_REGISTRY',
                       str(tmp_path / 'workdir-registry'))
