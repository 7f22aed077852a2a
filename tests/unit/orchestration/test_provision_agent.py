"""provision with a local cloud that runs a Trove tree: the image's guest
agent and the validation rules come from that tree; load-trove-image puts
the agent's provenance in Glance properties."""

import json
import pathlib
import types

import load_image
from trovestack.cloud import trove_source
from trovestack.orchestration import provision
from trovestack.orchestration import steps as orchestration_steps


def _tree(root):
    (root / 'trove' / 'templates' / 'mysql').mkdir(parents=True)
    (root / 'trove' / '__init__.py').write_text('')
    (root / 'setup.cfg').write_text('[metadata]\nname = trove\n')
    rules = root / 'trove' / 'templates' / 'mysql' / 'validation-rules.json'
    rules.write_text('{"configuration-parameters": []}')
    return root, rules


def _local_request(tmp_path, **kwargs):
    return provision.ProvisionRequest(
        datastores=[('mysql', '8.4')], state_dir=str(tmp_path / 'state'),
        tempest_conf=str(tmp_path / 'tempest.conf'), **kwargs)


def _runs(monkeypatch, trove):
    monkeypatch.setattr(provision, '_has_compute', lambda request: False)
    monkeypatch.setattr(trove_source, 'of_cloud', lambda state_dir: trove)


def test_a_local_cloud_running_a_tree_builds_its_agent(tmp_path,
                                                       monkeypatch):
    tree, rules = _tree(tmp_path / 'trove')
    _runs(monkeypatch, trove_source.TroveSource('26.0.0', path=str(tree)))
    steps = provision.plan(_local_request(tmp_path))
    build, load = steps[0], steps[1]
    assert build.describe.endswith(
        f'--guest-agent-source local --guest-agent-path {tree}')
    assert f'--config-params {rules}' in load.describe


def test_the_release_and_foreign_clouds_keep_the_default_agent(
        tmp_path, monkeypatch):
    _runs(monkeypatch, trove_source.TroveSource('26.0.0'))
    steps = provision.plan(_local_request(tmp_path))
    assert '--guest-agent' not in steps[0].describe
    assert 'site-packages/trove/templates/mysql' in steps[1].describe
    foreign = provision.plan(_local_request(tmp_path, os_cloud='elsewhere'))
    assert '--guest-agent' not in foreign[0].describe


def test_an_explicit_agent_source_wins(tmp_path, monkeypatch):
    tree, _ = _tree(tmp_path / 'trove')
    _runs(monkeypatch, trove_source.TroveSource('26.0.0', path=str(tree)))
    request = _local_request(tmp_path, agent_source='pip',
                             agent_ref='25.0.0')
    assert provision.guest_agent(request, str(tree)) == ('pip', '25.0.0',
                                                         None)
    steps = provision.plan(request)
    assert steps[0].describe.endswith(
        '--guest-agent-source pip --guest-agent-ref 25.0.0')


def test_build_step_passes_the_agent_and_says_the_path(tmp_path,
                                                       monkeypatch):
    from trovestack.images.guest import builder

    seen = []

    def build_image(request, progress=None):
        seen.append(request)
        return types.SimpleNamespace(
            path='/i/g.qcow2', skipped=False, build_path=builder.AGENT_ONLY,
            agent_source='tree:/src/trove@abc')
    monkeypatch.setattr(builder, 'build_image', build_image)
    step = orchestration_steps.build_image(builder.BuildRequest(
        datastore='mysql', datastore_version='8.4', agent_source='local',
        agent_path='/src/trove'))
    context = orchestration_steps.Context()
    row, = step.run(context)
    assert (seen[0].agent_source, seen[0].agent_path) == ('local',
                                                          '/src/trove')
    assert row.action == ('built (only the guest agent changed), guest '
                          'agent tree:/src/trove@abc')
    assert context.image == '/i/g.qcow2'


def test_validation_rules_of_a_tree(tmp_path):
    tree, rules = _tree(tmp_path / 'trove')
    rules_of = orchestration_steps.validation_rules
    assert rules_of('mysql', tree=str(tree)) == str(rules)
    assert rules_of('postgresql', tree=str(tree)) is None


def test_load_image_reads_the_agent_from_the_build_record(tmp_path):
    image = tmp_path / 'g.qcow2'
    image.write_bytes(b'x')
    agent = {'source': 'tree:/src/trove@abc+dirty', 'version': '26.0.0',
             'digest': 'd1g', 'path': '/src/trove', 'commit': 'abc',
             'dirty': True}
    pathlib.Path(f'{image}.build.json').write_text(json.dumps(
        {'build_hash': 'h', 'agent': agent}))
    request = load_image.make_request(str(image), 'mysql', '8.4')
    assert request.agent == agent
    assert load_image.agent_properties(request.agent) == {
        'trove_agent_source': 'tree:/src/trove@abc+dirty',
        'trove_agent_version': '26.0.0', 'trove_agent_digest': 'd1g'}
    assert load_image.agent_properties(
        {'source': 'release:26.0.0', 'version': '26.0.0'}) == {
        'trove_agent_source': 'release:26.0.0',
        'trove_agent_version': '26.0.0'}
    (tmp_path / 'h.qcow2').write_bytes(b'x')
    assert load_image.make_request(str(tmp_path / 'h.qcow2'), 'mysql',
                                   '8.4').agent is None
    assert load_image.agent_properties(None) == {}


def test_the_build_record_says_which_os_an_image_is(tmp_path):
    image = tmp_path / 'g.qcow2'
    image.write_bytes(b'x')
    # The devstack plugin passes its defaults (ubuntu noble) for a given
    # image too: the builder's record of a Debian image wins.
    pathlib.Path(f'{image}.build.json').write_text(json.dumps(
        {'guest_os': 'debian', 'guest_release': 'bookworm'}))
    request = load_image.make_request(str(image), 'mysql', '8.4',
                                      guest_os='ubuntu',
                                      guest_release='noble')
    assert (request.guest_os, request.guest_release) == (
        'debian', 'bookworm')
    plain = tmp_path / 'p.qcow2'
    plain.write_bytes(b'x')
    request = load_image.make_request(str(plain), 'mysql', '8.4',
                                      guest_os='ubuntu',
                                      guest_release='noble')
    assert (request.guest_os, request.guest_release) == ('ubuntu', 'noble')


def test_load_puts_the_agent_properties_on_the_image(monkeypatch):
    from load_image import datastores
    from load_image import images
    from load_image import trove_api

    seen = {}

    def ensure_image(conn, image_file, **kwargs):
        seen.update(kwargs['properties'])
        return types.SimpleNamespace(id='img')
    monkeypatch.setattr(trove_api, 'mgmt_client', lambda conn: None)
    monkeypatch.setattr(images, 'ensure_image', ensure_image)
    monkeypatch.setattr(datastores, 'register_version',
                        lambda *a, **k: types.SimpleNamespace())
    request = load_image.LoadRequest(
        image_file='g.qcow2', datastore='mysql', version='8.4',
        manager='mysql', image_name='g', guest_os='debian',
        guest_release='bookworm', build_hash='h',
        agent={'source': 'release:26.0.0', 'version': '26.0.0'})
    load_image.load(None, request, None)
    assert seen['trove_agent_source'] == 'release:26.0.0'
    assert seen['trove_agent_version'] == '26.0.0'
    assert seen['trove_build_hash'] == 'h'
    assert 'trove_agent_digest' not in seen
