"""The guest agent's source in the plugin: settings checked in pre-install
(and install, once $TROVE_DIR is cloned), and the settings reaching the
image build request through lib/trove's options and ``trovestack
devstack-extra``'s parser (no cloud, no image build: the builder is a
stand-in)."""

import os
import subprocess
import sys
import types

import pytest

from tests import trove_tree
from tests.devstack import harness
from tests.devstack.test_plugin_settings import calls
from tests.devstack.test_plugin_settings import error_lines
from tests.devstack.test_plugin_settings import run_plugin
from trovestack.commands import devstack as devstack_command
from trovestack.orchestration import devstack


@pytest.fixture(scope='module')
def tree(tmp_path_factory):
    """A real Trove source tree: the unpacked trove sdist."""
    return trove_tree.make_tree(tmp_path_factory.mktemp('trove'))


@pytest.fixture(scope='module')
def broken_tree(tmp_path_factory):
    """The same with a syntax error in the agent's start module."""
    return trove_tree.make_tree(tmp_path_factory.mktemp('broken'),
                                break_agent=True)


def test_default_source_is_trove_dir_and_it_is_checked(tmp_path, tree):
    result = run_plugin(tmp_path, 'stack', 'pre-install',
                        TROVE_DIR=str(tree))
    assert result.returncode == 0, result.stderr


def test_trove_dir_not_cloned_yet_is_checked_at_install(tmp_path,
                                                        broken_tree):
    """On a fresh host $TROVE_DIR appears in install (git_clone)."""
    missing = tmp_path / 'opt' / 'trove'
    result = run_plugin(tmp_path, 'stack', 'pre-install',
                        TROVE_DIR=str(missing))
    assert result.returncode == 0, result.stderr
    # the fake git_clone leaves an existing directory alone
    result = run_plugin(tmp_path, 'stack', 'install',
                        TROVE_DIR=str(broken_tree))
    assert result.returncode != 0
    [line] = error_lines(result)
    assert 'TROVE_GUEST_AGENT_PATH: trove/cmd/guest.py line' in line
    assert 'does not compile' in line
    assert f'setup_develop {broken_tree}' in calls(tmp_path)


def test_install_passes_with_a_good_tree(tmp_path, tree):
    result = run_plugin(tmp_path, 'stack', 'install', TROVE_DIR=str(tree))
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize('settings, fragment', [
    ({'TROVE_GUEST_AGENT_SOURCE': 'wheel'},
     "TROVE_GUEST_AGENT_SOURCE='wheel' is not one of: local pip git"),
    ({'TROVE_GUEST_AGENT_SOURCE': 'pip',
      'TROVE_GUEST_AGENT_VERSION': 'latest'},
     "TROVE_GUEST_AGENT_VERSION='latest' is not a Trove release"),
    ({'TROVE_GUEST_AGENT_SOURCE': 'git'},
     'TROVE_GUEST_AGENT_SOURCE=git needs TROVE_GUEST_AGENT_REPO'),
    ({'TROVE_GUEST_AGENT_SOURCE': 'git',
      'TROVE_GUEST_AGENT_REPO': 'https://opendev.org/openstack/trove',
      'TROVE_GUEST_AGENT_BRANCH': 'a b'},
     "TROVE_GUEST_AGENT_BRANCH='a b' is not a branch or tag name"),
    ({'TROVE_GUEST_AGENT_PATH': '/nonexistent/trove'},
     "TROVE_GUEST_AGENT_PATH='/nonexistent/trove' does not exist"),
    ({'TROVE_GUEST_AGENT_PATH': '{tmp}'},
     'is not a Trove source tree'),
    ({'TROVE_GUEST_AGENT_PATH': '{broken}'},
     'trove/cmd/guest.py line'),
])
def test_bad_agent_settings_fail_early_in_one_line(tmp_path, broken_tree,
                                                   settings, fragment):
    settings = {key: value.format(tmp=tmp_path, broken=broken_tree)
                for key, value in settings.items()}
    result = run_plugin(tmp_path, 'stack', 'pre-install', **settings)
    assert result.returncode != 0
    [line] = error_lines(result)
    assert fragment in line


@pytest.mark.parametrize('settings', [
    {'TROVE_GUEST_AGENT_SOURCE': 'pip'},
    {'TROVE_GUEST_AGENT_SOURCE': 'pip', 'TROVE_GUEST_AGENT_VERSION': '25.0.1'},
    {'TROVE_GUEST_AGENT_SOURCE': 'git',
     'TROVE_GUEST_AGENT_REPO': 'https://opendev.org/openstack/trove'},
    # a given image is not built: its agent settings are not looked at
    {'TROVE_GUEST_IMAGE': '/images/guest.qcow2',
     'TROVE_GUEST_AGENT_PATH': '/nonexistent/trove'},
])
def test_good_agent_settings_pass(tmp_path, settings):
    result = run_plugin(tmp_path, 'stack', 'pre-install', **settings)
    assert result.returncode == 0, result.stderr


def extra_args(tmp_path, **settings):
    """The options lib/trove gives ``trovestack devstack-extra``."""
    script = (f'source {harness.REPO}/tests/devstack/fake-devstack/functions'
              f' && source {harness.REPO}/devstack/settings'
              f' && source {harness.REPO}/devstack/lib/trove'
              ' && _trove_extra_args'
              ' && printf "%s\\0" "${_TROVE_EXTRA_ARGS[@]}"')
    env = {'PATH': os.environ['PATH'], 'DEST': '/opt/stack',
           'DATA_DIR': '/opt/stack/data', 'ENABLED_SERVICES': 'key',
           'GIT_BASE': 'https://opendev.org', 'SERVICE_HOST': '127.0.0.1',
           'FAKE_DEVSTACK_STATE': str(tmp_path / 'state'), **settings}
    result = subprocess.run(['bash', '-c', script], cwd=tmp_path, env=env,
                            capture_output=True, text=True, check=True)
    return result.stdout.split('\0')[:-1]


def build_request(monkeypatch, tmp_path, **settings):
    """The BuildRequest the extra phase would hand the image builder."""
    command = devstack_command.DevstackExtra(types.SimpleNamespace(), None)
    parser = command.get_parser('trovestack devstack-extra')
    plan = command._plan(parser.parse_args(extra_args(tmp_path,
                                                      **settings)))
    return devstack.build_request(plan)


def test_default_build_takes_the_agent_from_trove_dir(monkeypatch,
                                                      tmp_path):
    request = build_request(monkeypatch, tmp_path)
    assert (request.agent_source, request.agent_path, request.agent_ref) == \
        ('local', '/opt/stack/trove', None)
    request = build_request(monkeypatch, tmp_path, TROVE_DIR='/src/trove')
    assert request.agent_path == '/src/trove'
    request = build_request(monkeypatch, tmp_path,
                            TROVE_GUEST_AGENT_PATH='/src/other')
    assert request.agent_path == '/src/other'


@pytest.mark.parametrize('settings, wanted', [
    ({'TROVE_GUEST_AGENT_SOURCE': 'pip'}, ('pip', None, None)),
    ({'TROVE_GUEST_AGENT_SOURCE': 'pip',
      'TROVE_GUEST_AGENT_VERSION': '25.0.1'}, ('pip', None, '25.0.1')),
    ({'TROVE_GUEST_AGENT_SOURCE': 'git',
      'TROVE_GUEST_AGENT_REPO': 'https://review.example.org/trove'},
     ('git', 'https://review.example.org/trove', 'master')),
    ({'TROVE_GUEST_AGENT_SOURCE': 'git',
      'TROVE_GUEST_AGENT_REPO': '/src/trove.git',
      'TROVE_GUEST_AGENT_BRANCH': 'stable/2026.1'},
     ('git', '/src/trove.git', 'stable/2026.1')),
])
def test_pip_and_git_reach_the_build_request(monkeypatch, tmp_path,
                                             settings, wanted):
    request = build_request(monkeypatch, tmp_path, **settings)
    assert (request.agent_source, request.agent_path,
            request.agent_ref) == wanted


def test_check_needs_only_the_standard_library(tree):
    """pre-install runs it before anything is installed: no site-packages
    (-S), nothing from the environment (-I)."""
    tool = harness.REPO / 'devstack' / 'tools' / 'check_guest_agent.py'
    result = subprocess.run(
        [sys.executable, '-I', '-S', str(tool), '--source', 'local',
         '--path', str(tree)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert os.access(tool, os.X_OK)
