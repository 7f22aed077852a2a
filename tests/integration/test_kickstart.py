"""trovestack kick-start with a fake devstack checkout whose stack.sh only
records what it saw (its arguments, directory and local.conf)."""

import json
import os

import pytest

from tests import helpers
from trovestack.orchestration import kickstart

FAKE_STACK_SH = """#!/bin/bash
set -eu
{
    echo "args=$*"
    echo "pwd=$PWD"
    echo "marker=${KICKSTART_TEST_MARKER:-}"
} > ran.txt
cp local.conf seen-local.conf
echo "fake stack.sh done"
exit "${FAKE_STACK_STATUS:-0}"
"""


@pytest.fixture
def devstack(tmp_path):
    directory = tmp_path / 'devstack'
    directory.mkdir()
    (directory / 'stack.sh').write_text(FAKE_STACK_SH)
    (directory / 'functions-common').write_text('# fake\n')
    return directory


def _kick_start(*args, env=None, check=True):
    return helpers.run('trovestack', 'kick-start', *args, '-f', 'json',
                       env=env, check=check)


def _steps(result):
    return {row['Step']: row for row in json.loads(result.stdout)}


def test_kick_start_writes_local_conf_and_runs_stack(devstack, monkeypatch):
    monkeypatch.setenv('KICKSTART_TEST_MARKER', 'from-the-test')
    result = _kick_start('mysql', '--devstack-dir', devstack,
                         '--plugin-repo', '/srv/trovestack', '--plugin-ref',
                         'main')
    steps = _steps(result)
    assert steps['local.conf']['Action'] == 'written'
    assert steps['stack.sh']['Action'] == 'ran'
    assert 'fake stack.sh done' in result.stderr
    assert 'fake stack.sh done' not in result.stdout

    seen = (devstack / 'seen-local.conf').read_text()
    assert '[[local|localrc]]' in seen
    assert 'TROVE_DATASTORES=mysql:8.4' in seen
    assert 'enable_plugin trovestack /srv/trovestack main' in seen
    assert seen.count('enable_plugin trovestack') == 1
    ran = (devstack / 'ran.txt').read_text().splitlines()
    assert f'pwd={devstack}' in ran
    assert 'marker=from-the-test' in ran


def test_kick_start_keeps_the_users_local_conf(devstack):
    own = devstack / 'local.conf'
    own.write_text('[[local|localrc]]\nMY_SETTING=1\n')
    (devstack / 'local.conf.bak').write_text('older backup\n')
    result = _kick_start('postgresql', '--devstack-dir', devstack,
                         '--no-run')
    steps = _steps(result)
    assert steps['backup']['Path'] == str(devstack / 'local.conf.bak.1')
    assert steps['stack.sh']['Action'] == 'skipped'
    assert (devstack / 'local.conf.bak.1').read_text() == \
        '[[local|localrc]]\nMY_SETTING=1\n'
    assert (devstack / 'local.conf.bak').read_text() == 'older backup\n'
    assert 'postgresql' in own.read_text()
    assert not (devstack / 'ran.txt').exists()

    # Same content again: nothing is moved aside.
    again = _steps(_kick_start('postgresql', '--devstack-dir', devstack,
                               '--no-run'))
    assert again['local.conf']['Action'] == 'unchanged'
    assert not (devstack / 'local.conf.bak.2').exists()


def test_kick_start_dry_run_changes_nothing(devstack):
    steps = _steps(_kick_start('mariadb', '--devstack-dir', devstack,
                               '--dry-run'))
    assert steps['local.conf']['Action'] == 'would-write'
    assert steps['stack.sh']['Action'] == 'would-run'
    assert sorted(p.name for p in devstack.iterdir()) == [
        'functions-common', 'stack.sh']


def test_kick_start_enables_this_checkout_by_default(devstack):
    _kick_start('mysql', '--devstack-dir', devstack, '--no-run')
    text = (devstack / 'local.conf').read_text()
    branch = kickstart.current_branch()
    expected = f'enable_plugin trovestack {kickstart.REPO_ROOT}'
    assert (expected + (f' {branch}' if branch else '')) in text


def test_kick_start_reports_a_failed_stack(devstack):
    env = {**os.environ, 'FAKE_STACK_STATUS': '3'}
    result = _kick_start('mysql', '--devstack-dir', devstack, env=env,
                         check=False)
    assert result.returncode != 0
    assert 'failed with exit status 3' in result.stderr


def test_kick_start_refuses_a_directory_that_is_not_devstack(tmp_path):
    result = _kick_start('mysql', '--devstack-dir', tmp_path, check=False)
    assert result.returncode != 0
    assert 'is not a devstack checkout: no stack.sh, functions-common' in \
        result.stderr
    assert not (tmp_path / 'local.conf').exists()


def test_kick_start_lists_valid_datastores(devstack):
    result = _kick_start('cassandra', '--devstack-dir', devstack,
                         check=False)
    assert result.returncode != 0
    assert "no sample local.conf for datastore 'cassandra'" in result.stderr
    assert 'valid datastores: ' in result.stderr
    assert 'mysql' in result.stderr.split('valid datastores: ')[1]
    assert not (devstack / 'local.conf').exists()
