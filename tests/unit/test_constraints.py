"""The dependencies as the files declare them: constraints.txt is one
freeze (tools/freeze-constraints) that pins every requirement once, and
the installed packages agree with each other (pip check)."""

import configparser
import importlib.metadata
import os
import pathlib
import re
import subprocess
import sys

import pytest
from packaging.requirements import Requirement

from trovestack.images.guest import dib
from trovestack.images.guest import errors

TOP = pathlib.Path(__file__).resolve().parents[2]
REQUIREMENT_FILES = ('requirements.txt', 'cloud-requirements.txt',
                     'test-requirements.txt')
EXTRA = 'image-builder'


def normalise(name):
    """A project name as PEP 503 compares it."""
    return re.sub(r'[-_.]+', '-', name).lower()


def _lines(text):
    for line in text.splitlines():
        line = line.split(' #', 1)[0].strip()
        if line and not line.startswith(('#', '-')):
            yield line


def constraint_pins():
    """[(normalised name, version)] of constraints.txt, in file order."""
    pins = []
    for line in _lines((TOP / 'constraints.txt').read_text()):
        name, separator, version = line.partition('==')
        assert separator and version, f'not name==version: {line!r}'
        pins.append((normalise(name), version))
    return pins


def extra_requirements():
    config = configparser.ConfigParser()
    config.read(TOP / 'setup.cfg')
    return [Requirement(line)
            for line in _lines(config['extras'][EXTRA])]


def declared_requirements():
    """(where, Requirement) of every requirement file and the extra."""
    found = []
    for name in REQUIREMENT_FILES:
        text = (TOP / name).read_text()
        found += [(name, Requirement(line)) for line in _lines(text)]
    found += [(f'setup.cfg [extras] {EXTRA}', requirement)
              for requirement in extra_requirements()]
    return found


def test_constraints_name_no_package_twice():
    names = [name for name, _ in constraint_pins()]
    twice = sorted({name for name in names if names.count(name) > 1})
    assert twice == []


def test_constraints_header_names_the_tool():
    header = (TOP / 'constraints.txt').read_text().splitlines()[:2]
    assert all(line.startswith('#') for line in header)
    assert 'tools/freeze-constraints' in ' '.join(header)
    assert os.access(TOP / 'tools' / 'freeze-constraints', os.X_OK)


def test_every_requirement_is_pinned_within_its_range():
    pins = dict(constraint_pins())
    unpinned = []
    outside = []
    for where, requirement in declared_requirements():
        version = pins.get(normalise(requirement.name))
        if version is None:
            unpinned.append(f'{where}: {requirement.name}')
        elif not requirement.specifier.contains(version, prereleases=True):
            outside.append(f'{where}: {requirement} but {version} pinned')
    assert unpinned == []
    assert outside == []


def test_diskimage_builder_is_the_extra_only():
    assert [normalise(r.name) for r in extra_requirements()] == [
        'diskimage-builder']
    runtime = [normalise(r.name) for where, r in declared_requirements()
               if where == 'requirements.txt']
    assert 'diskimage-builder' not in runtime


def test_missing_disk_image_create_names_the_extra(monkeypatch):
    monkeypatch.setattr(dib.os, 'access', lambda path, mode: False)
    monkeypatch.setattr(dib.shutil, 'which', lambda name: None)
    with pytest.raises(errors.BuildError) as info:
        dib.disk_image_create()
    message = str(info.value)
    assert '\n' not in message
    assert f'trovestack[{EXTRA}]' in message
    assert 'tools/ensure-venv' in message


def _in_project_venv():
    try:
        importlib.metadata.distribution('trovestack')
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


@pytest.mark.skipif(not _in_project_venv(),
                    reason='trovestack is not installed in this interpreter')
def test_installed_packages_agree():
    result = subprocess.run(
        [sys.executable, '-m', 'pip', 'check', '--disable-pip-version-check'],
        capture_output=True, text=True, check=False, cwd='/')
    assert result.returncode == 0, result.stdout + result.stderr
