import pytest

from trovestack.commands import build_image as commands
from trovestack.commands import cliapp
from trovestack.commands import shell
from trovestack.common.errors import UserError
from trovestack.images.guest import builder
from trovestack.images.guest import errors


class FakeApp:
    class options:
        verbose_level = 0


@pytest.fixture
def command():
    return commands.BuildImage(FakeApp(), None)


def _parse(command, arglist):
    return command.get_parser('build-image').parse_args(arglist)


def test_defaults(command):
    parsed = _parse(command, [])
    request = command._request(parsed)
    assert (request.datastore, request.guest_os) == ('mysql', 'debian')
    assert not hasattr(request, 'mode')
    assert request.image_format == 'qcow2'
    assert request.agent_source == 'pip'
    assert request.base_image == 'cached'
    assert not request.force


def test_options_reach_the_request(command):
    parsed = _parse(command, [
        '--datastore', 'mariadb', '--datastore-version', '10.11',
        '--guest-os', 'debian', '--guest-release', 'bookworm',
        '--output', '/tmp/x.qcow2', '--size', '3',
        '--extra-element', 'a', '--extra-element', 'b',
        '--guest-agent-source', 'local', '--guest-agent-path', '/src/trove',
        '--mirror', 'http://m/debian', '--force'])
    request = command._request(parsed)
    assert request.extra_elements == ('a', 'b')
    assert (request.size, request.output) == (3, '/tmp/x.qcow2')
    assert request.agent_source == 'local'
    assert request.agent_path == '/src/trove'
    assert request.mirror == 'http://m/debian'
    assert request.force


@pytest.mark.parametrize('arglist', [
    ['--mode', 'package'], ['--size', '0'], ['--image-format', 'vmdk'],
    ['--output', 'a.qcow2', '--output-dir', 'b'],
    ['--guest-agent-source', 'tarball'],
])
def test_bad_options_are_rejected_by_the_parser(command, arglist):
    with pytest.raises(SystemExit):
        _parse(command, arglist)


def test_result_columns(command, monkeypatch):
    result = builder.BuildResult(path='/i.qcow2', sha256='ab',
                                 build_hash='cd', skipped=True,
                                 log_path='/l', sidecar_path='/s',
                                 build_path=builder.SKIPPED,
                                 agent_source='release:26.0.0')
    monkeypatch.setattr(builder, 'build_image',
                        lambda request, progress: result)
    headers, values = command.take_action(_parse(command, []))
    assert headers == commands.RESULT_HEADERS
    assert values == ('/i.qcow2', 'ab', 'cd', True, '/l', 'skipped',
                      'release:26.0.0')


def test_build_errors_are_user_errors(command, monkeypatch):
    def fail(request, progress):
        raise errors.BuildError('Unknown datastore')
    monkeypatch.setattr(builder, 'build_image', fail)
    with pytest.raises(UserError, match='Unknown datastore'):
        command.take_action(_parse(command, []))


def test_the_app_turns_build_errors_into_one_line_and_exit_1(
        monkeypatch, caplog):
    def fail(request, progress):
        raise errors.BuildError('Unknown datastore')
    monkeypatch.setattr(builder, 'build_image', fail)
    assert shell.image_builder_main([]) == 1
    assert [r.getMessage() for r in caplog.records
            if r.levelname == 'ERROR'] == ['Unknown datastore']


def test_list_describes_plugins(command):
    headers, _ = command.take_action(_parse(command, ['--list']))
    assert 'datastore mariadb' in headers


@pytest.mark.parametrize('argv, expected', [
    ([], ['build-image']),
    (['--list', '-f', 'json'], ['build-image', '--list', '-f', 'json']),
    (['--datastore', 'mysql', '-q'],
     ['-q', 'build-image', '--datastore', 'mysql']),
    (['help'], ['help']),
    (['build-image', '--list'], ['build-image', '--list']),
    (['--version'], ['--version']),
])
def test_cli_puts_build_image_first(argv, expected):
    app = cliapp.SingleCommandApp('trove-image-builder', commands.BuildImage,
                                  'build-image')
    assert app.command_argv(argv) == expected


def test_cli_list_runs(capsys):
    assert shell.image_builder_main(['--list', '-f', 'json']) == 0
    assert 'mysql' in capsys.readouterr().out
