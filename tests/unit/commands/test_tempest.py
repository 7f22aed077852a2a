"""trovestack gate-tests: a failed run on a compute cloud shows its
evidence (tempest and the cloud stood in for)."""

import io
from unittest import mock

import pytest

from trovestack.cloud.compute import cloud as compute_cloud
from trovestack.commands import cliapp
from trovestack.commands import tempest as commands
from trovestack.testenv import tempest_runner
from trovestack.trove import guests


@pytest.fixture
def tempest(tmp_path):
    with mock.patch.object(tempest_runner, 'find_tempest',
                           return_value='tempest'), \
            mock.patch.object(tempest_runner, 'check_plugin'), \
            mock.patch.object(tempest_runner, 'prepare_workspace'), \
            mock.patch.object(tempest_runner, 'last_results',
                              return_value=[]), \
            mock.patch.object(tempest_runner, 'write_results'), \
            mock.patch.object(compute_cloud, 'namespace_of',
                              return_value='trovestack-ns'), \
            mock.patch.object(guests, 'cloud_report',
                              return_value='== server db1 ACTIVE') as report:
        yield report


def _run(status, *extra):
    app = cliapp.SingleCommandApp('trovestack-gate-tests',
                                  commands.RunGateTests, 'gate-tests')
    app.stderr = io.StringIO()
    with mock.patch.object(tempest_runner, 'run', return_value=status):
        code = app.run(['--tempest-conf', 'tempest.conf', '--workspace-dir',
                        'ws', *extra])
    return code, app.stderr.getvalue()


def test_failure_on_a_compute_cloud_shows_the_guests(tempest):
    code, err = _run(1, '--state-dir', 'cloud', '--service-log', 'a.log',
                     '--service-log', 'b.log')
    assert code == 1
    assert 'Evidence from the compute cloud:\n== server db1 ACTIVE' in err
    tempest.assert_called_once_with('cloud', ['a.log', 'b.log'])


def test_no_evidence_when_tempest_passed_or_no_cloud(tempest):
    assert _run(0, '--state-dir', 'cloud')[0] == 0
    assert _run(1)[0] == 1
    tempest.assert_not_called()
