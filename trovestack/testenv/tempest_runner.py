"""Run trove-tempest-plugin with tempest from a workspace of our own.

A workspace is a directory made by ``tempest init`` (its workspace registry
is kept inside it, so ~/.tempest is not touched).  The tempest.conf that
``trovestack test-config`` wrote is copied into the workspace's etc/, with
the log and lock paths pointed into the workspace, then ``tempest run``
executes there with the test selection asked for.
"""

import dataclasses
import importlib.util
import io
import json
import logging
import os
import pathlib
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable
from typing import IO
from typing import TYPE_CHECKING
from typing import Any

import subunit
import testtools

from trovestack.common import files
from trovestack.common import ini
from trovestack.common import netns as netns_mod
from trovestack.common.errors import UserError

if TYPE_CHECKING:
    from testtools.testresult.real import TestDict

LOG = logging.getLogger(__name__)

PLUGIN_MODULE = 'trove_tempest_plugin'
SCENARIOS = r'^trove_tempest_plugin\.tests\.scenario\.'
# What the base gate job runs: one instance per datastore, basic actions.
GATE_REGEX = SCENARIOS + 'test_instance_basic'
# Every test of the plugin.
INT_REGEX = r'^trove_tempest_plugin\.tests'
# Named selections of the plugin's scenario modules (gate-tests
# --profile): each module runs for every datastore tempest.conf enables.
_MODULES: dict[str, tuple[str, ...]] = {
    'basic': ('test_instance_basic',),
    'backup': ('test_backup',),
    'replication': ('test_replication',),
    'actions': ('test_instance_actions',),
    'update-access': ('test_instance_update_access',),
}
_MODULES['full'] = tuple(module for name in ('basic', 'backup',
                                            'replication', 'actions',
                                            'update-access')
                         for module in _MODULES[name])
PROFILES = {name: SCENARIOS + '(' + '|'.join(modules) + r')\b'
            for name, modules in _MODULES.items()}
RESULTS_FILE = 'results.json'
# Datastores by the suffix of the plugin's test class names.
_DATASTORE_SUFFIXES = (('MariaDB', 'mariadb'), ('PostgreSQL', 'postgresql'),
                       ('MySQL', 'mysql'))
DATASTORES = tuple(datastore for _, datastore in _DATASTORE_SUFFIXES)
WORKSPACE_FILE = 'workspace.yaml'
STESTR_CONF = '.stestr.conf'
# Settings a tempest.conf must have for the plugin's tests to run at all.
REQUIRED_SETTINGS = (
    ('service_available', 'trove',
     'run "trovestack test-config --tempest-conf PATH"'),
    ('database', 'enabled_datastores',
     'run "trovestack test-config --tempest-conf PATH"'),
    ('identity', 'uri_v3', 'set the Keystone v3 URL tempest should use'),
)


def profile_regex(profile: str, datastores: Iterable[str] = ()) -> str:
    """The regex of a profile, narrowed to the test classes of the given
    datastores (the plugin names each class after its datastore:
    ``TestBackupMariaDB``) when any are given."""
    if not datastores:
        return PROFILES[profile]
    suffixes = [suffix for suffix, datastore in _DATASTORE_SUFFIXES
                if datastore in datastores]
    return (SCENARIOS + '(' + '|'.join(_MODULES[profile]) + r')\.Test\w*('
            + '|'.join(suffixes) + r')\b')


class TempestError(UserError):
    """Tempest cannot be run as asked (one line for the user)."""


@dataclasses.dataclass(frozen=True)
class Selection:
    """Which tests, and how tempest runs them."""

    regex: str
    exclude_regex: str | None = None
    concurrency: int | None = None
    serial: bool = False
    list_tests: bool = False


def default_workspace() -> pathlib.Path:
    """~/.cache/trovestack/tempest (XDG_CACHE_HOME is honoured)."""
    return files.cache_dir('trovestack', 'tempest')


def find_tempest() -> str:
    """Path of the tempest command next to this Python, or on PATH."""
    beside = pathlib.Path(sys.executable).parent / 'tempest'
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which('tempest')
    if found is None:
        raise TempestError(
            'tempest is not installed; pip install tempest '
            'trove-tempest-plugin (both are in test-requirements.txt)')
    return found


def check_plugin() -> None:
    """Raise TempestError unless trove-tempest-plugin is importable."""
    if importlib.util.find_spec(PLUGIN_MODULE) is None:
        raise TempestError('trove-tempest-plugin is not installed; pip '
                           'install trove-tempest-plugin')


def check_config(path: pathlib.Path | str) -> ini.IniFile:
    """Validate the tempest.conf at ``path``; returns its IniFile."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise TempestError(
            f'tempest config {path} does not exist; run "trovestack '
            'test-config --tempest-conf PATH" first')
    document = ini.IniFile.load(path)
    missing = [f'[{section}] {option} ({hint})'
               for section, option, hint in REQUIRED_SETTINGS
               if not document.get(section, option)]
    if missing:
        raise TempestError(f'tempest config {path} lacks '
                           + '; '.join(missing))
    trove = document.get('service_available', 'trove')
    if trove is None or trove.lower() != 'true':
        raise TempestError(f'tempest config {path} says [service_available] '
                           'trove is not True: no Trove test would run')
    return document


def workspace_config(workspace: pathlib.Path | str) -> pathlib.Path:
    return pathlib.Path(workspace) / 'etc' / 'tempest.conf'


def prepare_workspace(workspace: pathlib.Path | str,
                      tempest_conf: pathlib.Path | str, *,
                      tempest: str | None = None) -> pathlib.Path:
    """Create the workspace if needed and put ``tempest_conf`` in it.

    Returns the path of the workspace's tempest.conf (mode 0600: it may
    hold passwords).  A directory that exists, is not empty and is not a
    tempest workspace is refused rather than written into.
    """
    workspace = pathlib.Path(workspace).absolute()
    document = check_config(tempest_conf)
    if not (workspace / STESTR_CONF).is_file():
        if workspace.exists() and any(workspace.iterdir()):
            raise TempestError(
                f'workspace {workspace} exists and is not a tempest '
                'workspace; give an empty or new --workspace-dir')
        _init_workspace(workspace, tempest or find_tempest())
    for option, value in (('log_dir', workspace / 'logs'),
                          ('log_file', 'tempest.log')):
        if not document.get('DEFAULT', option):
            document.set('DEFAULT', option, str(value))
    if not document.get('oslo_concurrency', 'lock_path'):
        document.set('oslo_concurrency', 'lock_path',
                     str(workspace / 'tempest_lock'))
    target = workspace_config(workspace)
    document.save(target)
    os.chmod(target, 0o600)
    LOG.info('Tempest workspace %s uses %s', workspace, tempest_conf)
    return target


def _init_workspace(workspace: pathlib.Path, tempest: str) -> None:
    LOG.info('Creating tempest workspace %s', workspace)
    workspace.parent.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        [tempest, 'init', '--workspace-path',
         str(workspace / WORKSPACE_FILE), str(workspace)],
        capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if result.returncode != 0 or not (workspace / STESTR_CONF).is_file():
        errors = [line for line in result.stderr.splitlines()
                  if 'ERROR' in line] or result.stderr.splitlines()[-1:]
        raise TempestError(f'tempest init {workspace} failed: '
                           + ' '.join(errors).strip())


def run_arguments(tempest: str, workspace: pathlib.Path | str,
                  selection: 'Selection', *,
                  netns: str | None = None) -> list[str]:
    """The ``tempest run`` command line for ``selection`` (inside the
    network namespace ``netns``, when given)."""
    argv = [tempest, 'run', '--config-file',
             str(workspace_config(workspace)), '--regex', selection.regex]
    if selection.exclude_regex:
        argv += ['--exclude-regex', selection.exclude_regex]
    if selection.list_tests:
        argv.append('--list-tests')
        return netns_mod.inside(netns, argv)
    if selection.serial:
        argv.append('--serial')
    elif selection.concurrency:
        argv += ['--concurrency', str(selection.concurrency)]
    return netns_mod.inside(netns, argv)


def run(workspace: pathlib.Path | str, selection: 'Selection', *,
        tempest: str | None = None, stdout: int | IO[Any] | None = None,
        netns: str | None = None) -> int:
    """Run tempest in ``workspace`` (inside the network namespace
    ``netns``, when given); returns its exit code."""
    argv = run_arguments(tempest or find_tempest(), workspace, selection,
                         netns=netns)
    LOG.info('Running %s', ' '.join(argv))
    return subprocess.run(argv, cwd=str(workspace), stdout=stdout,
                          stdin=subprocess.DEVNULL).returncode


@dataclasses.dataclass(frozen=True)
class TestResult:
    """One test of a run: its short name, datastore, outcome, duration."""

    test: str
    datastore: str
    result: str
    seconds: float | None

    __test__ = False


def _short_name(test_id: str) -> str:
    """``test_instance_basic.TestInstanceBasicMariaDB.test_configuration``
    from a tempest id (a class's setUpClass keeps its name)."""
    name = re.sub(r'\[.*\]$', '', test_id)
    match = re.match(r'^(setUpClass|tearDownClass) \((.*)\)$', name)
    if match:
        return _short_name(match.group(2)) + '.' + match.group(1)
    prefix = 'trove_tempest_plugin.tests.scenario.'
    return name[len(prefix):] if name.startswith(prefix) else name


def _datastore(test_id: str) -> str:
    for part in re.split(r'[.() ]', test_id):
        for suffix, datastore in _DATASTORE_SUFFIXES:
            if part.startswith('Test') and part.endswith(suffix):
                return datastore
    return ''


def parse_results(stream: IO[bytes]) -> list[TestResult]:
    """The tests of a subunit v2 byte stream, in the order they ended."""
    found = []

    def ended(test: 'TestDict') -> None:
        if test['status'] in ('exists', 'inprogress', None):
            return
        start, stop = test['timestamps']
        seconds = (round((stop - start).total_seconds(), 1)
                   if start and stop else None)
        found.append(TestResult(_short_name(test['id']),
                                _datastore(test['id']), test['status'],
                                seconds))

    result = testtools.StreamToDict(ended)
    result.startTestRun()
    subunit.ByteStreamToStreamResult(stream, non_subunit_name='stdout').run(
        result)
    result.stopTestRun()
    return found


def last_results(workspace: pathlib.Path | str) -> list[TestResult]:
    """The tests of the workspace's last tempest run ([] when it has
    none)."""
    stestr = pathlib.Path(sys.executable).parent / 'stestr'
    argv = [str(stestr) if stestr.is_file() else 'stestr', 'last',
            '--subunit']
    try:
        out = subprocess.run(argv, cwd=str(workspace), capture_output=True,
                             stdin=subprocess.DEVNULL, timeout=120)
    except (OSError, subprocess.SubprocessError) as exc:
        LOG.warning('Cannot read the last run\'s results: %s', exc)
        return []
    if out.returncode != 0:
        return []
    return parse_results(io.BytesIO(out.stdout))


def write_results(path: pathlib.Path | str,
                  results: Iterable[TestResult]) -> None:
    """``results`` as a JSON list of {test, datastore, result, seconds}."""
    files.write_atomic(path, json.dumps(
        [dataclasses.asdict(result) for result in results], indent=2)
        + '\n')
