"""Agent-only rebuilds and the guest agent's provenance, with DIB and the
agent step stubbed (tests/integration/test_agent_rebuild.py does them for
real)."""

import json
import pathlib

import pytest

from trovestack.images.guest import agent_layer
from trovestack.images.guest import builder
from trovestack.images.guest import errors
from trovestack.images.guest import guest_agent


def _tree(root, marker='one'):
    """A minimal Trove source tree whose agent logs ``marker``."""
    root = pathlib.Path(root)
    (root / 'trove' / 'cmd').mkdir(parents=True, exist_ok=True)
    (root / 'setup.cfg').write_text('[metadata]\nname = trove\n')
    (root / 'trove' / '__init__.py').write_text('')
    (root / 'trove' / 'cmd' / '__init__.py').write_text('')
    (root / 'trove' / 'cmd' / 'guest.py').write_text(
        'MARKER = %r\n' % marker)
    return root


def _sidecar(result):
    return json.loads(pathlib.Path(result.sidecar_path).read_text())


def _local(request_factory, tree, **kwargs):
    return request_factory(agent_source='local', agent_path=str(tree),
                           **kwargs)


def test_an_agent_only_change_rebuilds_from_the_previous_image(
        fake_agent_step, request_factory, tmp_path):
    tree = _tree(tmp_path / 'trove')
    first = builder.build_image(_local(request_factory, tree))
    assert first.build_path == builder.FULL
    before = pathlib.Path(first.path).read_bytes()

    _tree(tree, marker='two')
    second = builder.build_image(_local(request_factory, tree))
    assert second.build_path == builder.AGENT_ONLY and not second.skipped
    assert second.path == first.path
    # Same rules as a full build of that request: the build hash covers
    # the new agent; the base hash (everything else) is the previous one.
    assert second.build_hash != first.build_hash
    sidecar = _sidecar(second)
    assert sidecar['build_hash'] == second.build_hash
    assert sidecar['base_hash'] == _sidecar(first)['base_hash']
    assert sidecar['build_path'] == builder.AGENT_ONLY
    assert sidecar['previous_sha256'] == first.sha256
    assert sidecar['inputs']['guest_agent'].startswith('local:')
    assert sidecar['agent']['source'] == 'tree:%s' % tree
    # The agent step worked on a copy in the build's work directory.
    (image, image_format, wheel, workdir), = fake_agent_step.calls
    assert image.parent == workdir and image_format == 'qcow2'
    assert pathlib.Path(first.path).read_bytes() == (
        before + b' + ' + wheel.read_bytes())
    assert pathlib.Path(first.path + '.sha256').read_text().split()[0] == (
        second.sha256)
    assert not list(pathlib.Path(first.path).parent.glob('.build-*'))

    third = builder.build_image(_local(request_factory, tree))
    assert third.build_path == builder.SKIPPED and third.skipped


def test_full_rebuild_when_more_than_the_agent_changed_or_forced(
        fake_agent_step, fake_dib, request_factory, tmp_path):
    tree = _tree(tmp_path / 'trove')
    builder.build_image(_local(request_factory, tree))
    _tree(tree, marker='two')
    assert builder.build_image(_local(request_factory, tree, size=3)) \
        .build_path == builder.FULL
    _tree(tree, marker='three')
    assert builder.build_image(_local(request_factory, tree, size=3,
                                      force=True)).build_path == builder.FULL
    assert len(fake_dib.calls) == 3 and fake_agent_step.calls == []


def test_the_release_agent_then_a_tree_is_agent_only(
        fake_agent_step, request_factory, tmp_path):
    first = builder.build_image(request_factory())
    assert _sidecar(first)['agent'] == {'source': 'release:26.0.0',
                                        'version': '26.0.0'}
    assert first.agent_source == 'release:26.0.0'
    tree = _tree(tmp_path / 'trove')
    second = builder.build_image(_local(request_factory, tree))
    assert second.build_path == builder.AGENT_ONLY
    agent = _sidecar(second)['agent']
    assert agent['source'] == second.agent_source == 'tree:%s' % tree
    assert agent['version'] == '26.0.0'   # the wheel's
    assert agent['digest'] == _sidecar(second)['inputs'][
        'guest_agent'].split(':', 1)[1]


def test_a_touched_previous_image_is_not_a_base(fake_agent_step, fake_dib,
                                                request_factory, tmp_path):
    tree = _tree(tmp_path / 'trove')
    first = builder.build_image(_local(request_factory, tree))
    pathlib.Path(first.path).write_bytes(b'tampered')
    _tree(tree, marker='two')
    assert builder.build_image(_local(request_factory, tree)).build_path == (
        builder.FULL)
    assert fake_agent_step.calls == []


def test_a_failed_agent_step_keeps_the_previous_image(
        fake_agent_step, request_factory, tmp_path):
    tree = _tree(tmp_path / 'trove')
    first = builder.build_image(_local(request_factory, tree))
    image = pathlib.Path(first.path)
    before = image.read_bytes(), _sidecar(first)
    fake_agent_step.fail = errors.BuildError('importing the guest agent in '
                                             'the image failed')
    _tree(tree, marker='two')
    with pytest.raises(errors.BuildError, match='importing'):
        builder.build_image(_local(request_factory, tree))
    assert (image.read_bytes(), _sidecar(first)) == before
    assert not list(image.parent.glob('.build-*'))


def test_a_broken_tree_is_one_line_before_any_work(
        fake_agent_step, fake_dib, request_factory, tmp_path):
    tree = _tree(tmp_path / 'trove')
    with open(tree / 'trove' / 'cmd' / 'guest.py', 'a') as module:
        module.write('def broken(:\n')
    request = _local(request_factory, tree)
    with pytest.raises(errors.BuildError) as raised:
        builder.build_image(request)
    message = str(raised.value)
    assert '\n' not in message
    assert 'trove/cmd/guest.py line 2 does not compile' in message
    assert fake_dib.calls == [] and fake_agent_step.calls == []
    assert not (pathlib.Path(request.cache_dir) / 'images').exists()


def test_skip_records_another_tree_with_the_same_content(
        fake_agent_step, request_factory, tmp_path):
    first = builder.build_image(_local(request_factory,
                                       _tree(tmp_path / 'a')))
    again = builder.build_image(_local(request_factory,
                                       _tree(tmp_path / 'b')))
    assert again.skipped and again.build_hash == first.build_hash
    assert _sidecar(again)['agent']['source'] == 'tree:%s' % (tmp_path / 'b')


def test_base_hash_leaves_out_the_agent_only(request_factory):
    plan = builder.plan_build(request_factory())
    inputs = builder.hash_inputs(plan, 'pip:trove==26.0.0')
    other = builder.hash_inputs(plan, 'local:abc')
    assert builder.base_hash(inputs) == builder.base_hash(other)
    assert builder.base_hash(inputs) != builder.base_hash(
        dict(inputs, size='3'))
    assert builder.base_hash(inputs) != builder.hashing.build_hash(inputs)


def test_provenance_of_each_source(tmp_path, monkeypatch):
    assert guest_agent.provenance('pip', '25.0.0', None, 'pip:trove==25.0.0') \
        == {'source': 'release:25.0.0', 'version': '25.0.0'}
    wheels = tmp_path / 'wheels'
    wheels.mkdir()
    (wheels / 'trove-27.0.0.dev3-py3-none-any.whl').write_text('')
    assert guest_agent.provenance(
        'git', 'master', 'https://git.example/trove',
        'git:https://git.example/trove@abc', wheels) == {
        'source': 'git:https://git.example/trove@abc',
        'version': '27.0.0.dev3'}
    tree = _tree(tmp_path / 'trove')
    (tree / 'PKG-INFO').write_text('Metadata-Version: 2.1\nName: trove\n'
                                   'Version: 26.0.0\n')
    agent = guest_agent.provenance('local', None, str(tree), 'local:d1g')
    assert agent == {'source': 'tree:%s' % tree, 'version': '26.0.0',
                     'digest': 'd1g', 'path': str(tree), 'commit': '',
                     'dirty': False}


def test_agent_wheel_is_prepared_once_per_identity(tmp_path, monkeypatch):
    calls = []

    def fake_pip(args, log):
        calls.append(args)
        dest = pathlib.Path(args[args.index('--wheel-dir') + 1])
        (dest / 'trove-26.0.0-py3-none-any.whl').write_text('')
    monkeypatch.setattr(guest_agent, '_pip', fake_pip)
    tree = _tree(tmp_path / 'trove')
    with open(tmp_path / 'log', 'w') as log:
        first = guest_agent.prepare_agent('local', None, str(tree), tmp_path,
                                          '3.11', log)
        assert guest_agent.prepare_agent('local', None, str(tree), tmp_path,
                                         '3.11', log) == first
        _tree(tree, marker='two')
        second = guest_agent.prepare_agent('local', None, str(tree),
                                           tmp_path, '3.11', log)
    assert second != first and len(calls) == 2
    assert calls[0][:2] == ['wheel', '--no-deps']
    assert guest_agent.agent_wheel(second).name == (
        'trove-26.0.0-py3-none-any.whl')
    assert (second / 'agent.txt').read_text() == 'trove\n'


def test_partitions_of_a_loop_device_in_order(tmp_path):
    loop = tmp_path / 'loop3'
    for name in ('loop3p10', 'loop3p2', 'loop3p1'):
        (loop / name).mkdir(parents=True)
    assert agent_layer._partitions('/dev/loop3', sys_block=tmp_path) == [
        '/dev/loop3p1', '/dev/loop3p2', '/dev/loop3p10']


def test_agent_step_tools_per_format():
    assert 'qemu-storage-daemon' in agent_layer.tools('qcow2')
    assert 'qemu-storage-daemon' not in agent_layer.tools('raw')
