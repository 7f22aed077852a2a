"""Unit tests of the command parsers and the single-command apps."""

import os
import pathlib
import subprocess
import sys
from unittest import mock

import pytest

from trovestack.commands import load_image as commands


def _parse(command_class, arglist):
    command = command_class(mock.Mock(), None)
    return command.get_parser('test').parse_args(arglist)


class TestLoadImageParser:

    def test_contract(self):
        args = _parse(commands.LoadImage, [
            'guest.qcow2', '--datastore', 'mysql', '--version', '8.4',
            '--image-tags', 'a,b', '--packages', 'x', '--default',
            '--prune', '--visibility', 'public', '--os-cloud', 'c'])
        assert (args.image_file, args.datastore, args.version) == (
            'guest.qcow2', 'mysql', '8.4')
        assert args.image_tags == ['a', 'b'] and args.packages == ['x']
        assert args.default and args.prune is True
        assert args.os_cloud == 'c'

    def test_defaults_come_from_config(self):
        args = _parse(commands.LoadImage, [
            'g', '--datastore', 'mysql', '--datastore-version', '8.4'])
        assert args.version == '8.4'
        assert args.prune is None and args.visibility is None

    def test_prune_and_keep_old_exclude_each_other(self):
        with pytest.raises(SystemExit):
            _parse(commands.LoadImage, [
                'g', '--datastore', 'm', '--version', '1', '--prune',
                '--keep-old'])

    def test_bad_disk_format(self):
        with pytest.raises(SystemExit):
            _parse(commands.LoadImage, [
                'g', '--datastore', 'm', '--version', '1',
                '--disk-format', 'vmdk'])


def test_activate_parser():
    args = _parse(commands.ActivateImage, ['mysql', '8.4', '--exclusive'])
    assert (args.datastore, args.version, args.exclusive) == (
        'mysql', '8.4', True)


def _run_script(name, *args):
    script = pathlib.Path(sys.executable).parent / name
    return subprocess.run([str(script), *map(str, args)], capture_output=True,
                          text=True, env={**os.environ, 'OS_CLOUD': ''},
                          timeout=60)


def test_console_script_version_option_is_the_datastore_version(tmp_path):
    result = _run_script('load-trove-image', tmp_path / 'missing.qcow2',
                         '--datastore', 'mysql', '--version', '8.4')
    assert result.returncode != 0
    assert result.stderr.strip().endswith('does not exist')


def test_bad_input_is_one_line_before_any_cloud_call(tmp_path):
    image = tmp_path / 'g.img'
    image.write_bytes(b'x' * 1024)
    # No cloud is configured at all: the error must come first.
    result = _run_script('load-trove-image', image, '--datastore', 'mongo',
                         '--version', '8.4')
    assert result.returncode != 0
    assert _error_lines(result) == [
        "unknown datastore manager 'mongo'; valid managers: mariadb, mysql, "
        "postgresql; give --manager for datastore 'mongo'"]


def _error_lines(result):
    return [line for line in result.stderr.splitlines()
            if line.strip() and 'eventlet' not in line.lower()]
