"""Every command that ``trovestack --help`` advertises exists, has help,
and is run for real somewhere in the test suite (no stubs)."""

import pathlib
import re

import pytest

from tests.helpers import run

TESTS = pathlib.Path(__file__).resolve().parents[1]
CONSOLE_SCRIPTS = ('trovestack', 'load-trove-image', 'activate-trove-image',
                   'trove-image-builder')
CLIFF_BUILTINS = {'help', 'complete'}


def advertised_commands():
    out = run('trovestack', '--help').stdout
    listing = out.split('Commands:', 1)[1]
    names = []
    for line in listing.splitlines():
        match = re.match(r'^  (\S+(?: \S+)*?)  +\S', line)
        if match and match.group(1) not in CLIFF_BUILTINS:
            names.append(match.group(1))
    return names


def _test_sources():
    return '\n'.join(path.read_text() for path in TESTS.rglob('test_*.py')
                     if path.resolve() != pathlib.Path(__file__).resolve())


def test_help_lists_the_commands():
    names = advertised_commands()
    for expected in ('cloud up', 'cloud down', 'cloud status', 'cloud env'):
        assert expected in names


@pytest.mark.parametrize('command', advertised_commands())
def test_each_command_has_help(command):
    out = run('trovestack', *command.split(), '--help').stdout
    assert out.startswith('usage: trovestack ' + command)


@pytest.mark.parametrize('command', advertised_commands())
def test_each_command_is_run_by_a_test(command):
    words = command.split()
    quoted = ', '.join(f"'{word}'" for word in words)
    sources = _test_sources()
    assert f"'trovestack', {quoted}" in sources or \
        f"trovestack {command}" in sources, \
        f'no test runs "trovestack {command}"'


@pytest.mark.parametrize('script', CONSOLE_SCRIPTS)
def test_console_scripts_answer_help(script):
    result = run(script, '--help')
    assert 'usage:' in result.stdout
