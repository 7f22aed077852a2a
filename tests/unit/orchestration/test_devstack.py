"""trovestack.orchestration.devstack (the plugin's extra phase) and its
command's parsing; the whole chain runs against the local cloud in
tests/integration/test_devstack_plugin.py."""

import dataclasses
import types

import pytest

from trovestack.commands import devstack as devstack_command
from trovestack.common import errors
from trovestack.common import results
from trovestack.orchestration import devstack
from trovestack.orchestration import steps
from trovestack.trove import instance_prereqs
from trovestack.trove import trove_config

DATASTORES = (('mysql', '8.4'), ('postgresql', '17'), ('mysql', '8.0'),
              ('postgresql', '18'))
FILES = {trove_config.TROVE_CONF: 'trove.conf',
         trove_config.GUESTAGENT_CONF: 'trove-guestagent.conf'}


def plan(**overrides):
    values = dict(datastores=DATASTORES, config_files=FILES)
    values.update(overrides)
    return devstack.ExtraPlan(**values)


def test_defaults_rule_first_version_of_each_datastore():
    assert devstack.default_versions(DATASTORES) == {
        ('mysql', '8.4'), ('postgresql', '17')}
    assert devstack.default_datastore(DATASTORES) == 'mysql'


@pytest.mark.parametrize('source,embedded', [
    ('upstream', ()),
    ('registry', ()),
    ('embedded', ('mariadb:11.8', 'postgresql:17')),
])
def test_one_build_for_every_datastore(source, embedded, tmp_path):
    extra = plan(datastores=(('mariadb', '11.8'), ('postgresql', '17')),
                 image_source=source, registry='10.0.0.1:4000',
                 image_dir=str(tmp_path))
    request = devstack.build_request(extra)
    assert (request.datastore, request.datastore_version) == (
        'mariadb', '11.8')
    assert request.embed_datastore_images == embedded
    assert request.output_dir == str(tmp_path)
    # the builder names the file, the file names the Glance image
    assert request.output is None


def test_offline_images_only_for_project_sources():
    assert plan().offline_datastores() == ()
    assert plan(image_source='embedded').offline_datastores() == DATASTORES
    # a given image has its datastore images embedded already
    assert plan(image_source='embedded', image='/g.qcow2') \
        .offline_datastores() == ()
    assert plan(image_source='registry', registry='h:1', image='/g.qcow2') \
        .offline_datastores() == DATASTORES


def test_bad_plans():
    with pytest.raises(errors.UserError, match='valid: upstream, embedded'):
        plan(image_source='hub')
    with pytest.raises(errors.UserError, match='no datastore'):
        plan(datastores=())
    with pytest.raises(errors.UserError, match='needs a registry'):
        plan(image_source='registry').docker_images()


def test_instance_settings_from_prereqs():
    prepared = instance_prereqs.Prepared(
        rows=[], network_id='net', security_group_id='sg',
        keypair='trove-mgmt')
    settings = devstack.instance_settings(
        plan(image_source='registry', registry='10.0.0.1:4000',
             insecure_registries=('other:5000',), volume_support=False),
        prepared)
    assert settings.management_networks == ('net',)
    assert settings.management_security_groups == ('sg',)
    assert settings.keypair == 'trove-mgmt'
    assert settings.insecure_registries == ('10.0.0.1:4000', 'other:5000')
    assert settings.docker_images['mysql'] == \
        '10.0.0.1:4000/trovestack/mysql'
    assert settings.volume_support is False


def test_guest_user_owns_injected_config_and_names_the_build():
    prepared = instance_prereqs.Prepared(rows=[])
    default = devstack.instance_settings(plan(), prepared)
    assert default.guest_user == trove_config.GUEST_USER == 'trove'
    ubuntu = plan(guest_user='ubuntu')
    config = trove_config.instance_config(
        devstack.instance_settings(ubuntu, prepared))
    assert config[trove_config.TROVE_CONF]['DEFAULT'][
        'injected_config_owner'] == 'ubuntu'
    assert devstack.build_request(ubuntu).guest_user == 'ubuntu'
    with pytest.raises(errors.UserError, match='not a user name'):
        plan(guest_user='Ubuntu')
    with pytest.raises(errors.UserError, match='unknown Trove limit'):
        plan(limits={'max_backups': 1})


def test_another_guest_user_names_another_image(tmp_path):
    from trovestack.images.guest import builder

    # the builder's default user is the one Trove is told about
    assert builder.BuildRequest().guest_user == trove_config.GUEST_USER
    names = {}
    for user in (trove_config.GUEST_USER, 'dbadmin'):
        built = builder.plan_build(builder.BuildRequest(
            datastore='mysql', guest_os='ubuntu', guest_release='noble',
            guest_user=user, output_dir=str(tmp_path)))
        names[user] = built.output.name
    # a build with another user is other content: another file, another
    # Glance image
    assert names == {
        'trove': 'trove-guest-ubuntu-noble-container.qcow2',
        'dbadmin': 'trove-guest-ubuntu-noble-container-dbadmin.qcow2'}


def test_extra_runs_the_chain_in_order(monkeypatch, tmp_path):
    import load_image

    order = []
    image = tmp_path / 'guest.qcow2'
    image.write_bytes(b'x')

    def load(conn, request, image_file):
        order.append(('load', request.image_name))
        return types.SimpleNamespace(
            image=types.SimpleNamespace(action='reused', id='i'),
            version=types.SimpleNamespace(action='created', default=False),
            parameters=None)

    def converge(conn, wanted):
        order.append('prereqs')
        return instance_prereqs.Prepared(rows=[], network_id='net')

    monkeypatch.setattr(load_image, 'make_request',
                        lambda image, name, version, **kw:
                        types.SimpleNamespace(**kw))
    monkeypatch.setattr(load_image, 'read_image', lambda request: None)
    monkeypatch.setattr(load_image, 'load', load)
    monkeypatch.setattr(instance_prereqs, 'converge', converge)
    files = {trove_config.TROVE_CONF: tmp_path / 'trove.conf',
             trove_config.GUESTAGENT_CONF: tmp_path / 'guest.conf'}
    extra = plan(image=str(image), config_files=files,
                 limits={'max_accepted_volume_size': 25})
    assert [step.name for step in devstack.plan_steps(extra)] == [
        'load-image'] * 4 + ['instance-prereqs', 'host-messaging',
                             'trove-config']
    rows = devstack.extra(object(), extra)
    assert order == [('load', 'guest')] * 4 + ['prereqs']
    assert [r.kind for r in rows] == ['load-image'] * 4 + ['config',
                                                           'config']
    text = files[trove_config.TROVE_CONF].read_text()
    assert 'management_networks = net' in text
    assert 'default_datastore = mysql' in text
    assert 'max_accepted_volume_size = 25' in text
    assert 'max_volumes_per_tenant' not in text  # unset: Trove's default


class _Types:
    """A stand-in Cinder with the volume types named."""

    def __init__(self, *names):
        self.names = names

    def find_type(self, name):
        return types.SimpleNamespace(name=name) if name in self.names \
            else None

    def types(self):
        return [types.SimpleNamespace(name=name) for name in self.names]


@pytest.mark.parametrize('endpoint, names, action', [
    (True, ('ceph', 'lvmdriver-1'), results.OK),
    (False, (), results.SKIPPED),  # no Cinder to ask (API-only cloud)
])
def test_volume_type_is_checked_in_cinder(monkeypatch, endpoint, names,
                                          action):
    from trovestack import testenv

    monkeypatch.setattr(testenv, 'has_service', lambda conn, kind: endpoint)
    conn = types.SimpleNamespace(block_storage=_Types(*names))
    [row] = devstack._volume_type(conn, plan(volume_type='ceph'))
    assert (row.kind, row.name, row.action) == ('volume-type', 'ceph',
                                                action)
    # nothing to check: no type asked for, or no volumes at all
    assert devstack._volume_type(conn, plan()) == []
    assert devstack._volume_type(
        conn, plan(volume_type='ceph', volume_support=False)) == []


def test_unknown_volume_type_fails_naming_the_known(monkeypatch):
    from trovestack import testenv

    monkeypatch.setattr(testenv, 'has_service', lambda conn, kind: True)
    conn = types.SimpleNamespace(block_storage=_Types('ceph', 'lvm'))
    with pytest.raises(errors.UserError,
                       match=r"no volume type 'rbd' \(known: ceph, lvm\)"):
        devstack._volume_type(conn, plan(volume_type='rbd'))


def test_missing_given_image(tmp_path):
    with pytest.raises(errors.UserError, match='does not exist'):
        devstack.extra(object(), plan(image=str(tmp_path / 'nope')))


def parse(*argv):
    command = devstack_command.DevstackExtra(
        types.SimpleNamespace(), None)
    parser = command.get_parser('trovestack devstack-extra')
    return command._plan(parser.parse_args(
        ['--trove-conf', 't', '--guestagent-conf', 'g', *argv]))


def test_command_options_to_plan(tmp_path):
    key = tmp_path / 'id.pub'
    key.write_text('ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHNvbWVrZXk me\n')
    extra = parse('mysql:8.4', 'mariadb:11.8', '--image-source', 'registry',
                  '--registry', 'h:4000', '--datastore-image', 'mysql=my/img',
                  '--network-isolation', 'True', '--volume-support', 'False',
                  '--usage-timeout', '7200', '--public-key-file', str(key),
                  '--mgmt-subnet-range', '10.9.0.0/24',
                  '--guest-user', 'ubuntu', '--agent-call-low-timeout',
                  '90', '--resize-time-out', '2400',
                  '--max-volumes-per-tenant', '100')
    assert extra.guest_user == 'ubuntu'
    assert (extra.timeouts.agent_call_low_timeout,
            extra.timeouts.resize_time_out) == (90, 2400)
    assert extra.limits == {'max_volumes_per_tenant': 100}
    assert extra.datastores == (('mysql', '8.4'), ('mariadb', '11.8'))
    assert extra.docker_images() == {
        'mysql': 'my/img', 'mariadb': 'h:4000/trovestack/mariadb'}
    assert extra.network_isolation is True and extra.volume_support is False
    assert extra.timeouts.usage_timeout == 7200
    assert extra.timeouts.state_change_wait_time == \
        trove_config.TCG_TIMEOUTS.state_change_wait_time
    assert extra.wanted.public_key.startswith('ssh-ed25519 ')
    assert extra.wanted.cidr == '10.9.0.0/24'
    assert extra.wanted.subnet_name == 'trove-mgmt-subnet'


@pytest.mark.parametrize('argv', [
    ['mysql'], ['mysql:8.4', '--volume-support', 'yes'],
    ['mysql:8.4', '--datastore-image', 'mysql'],
    ['mysql:8.4', '--usage-timeout', '0'],
    ['mysql:8.4', '--guest-user', 'no spaces'],
    ['mysql:8.4', '--max-accepted-volume-size', '0'],
])
def test_command_rejects_bad_options(argv):
    with pytest.raises(SystemExit):
        parse(*argv)


def test_guests_reach_messaging_through_the_host_port(monkeypatch,
                                                      tmp_path):
    server = tmp_path / 'trove.conf'
    server.write_text('[DEFAULT]\ntransport_url = '
                      'rabbit://stackrabbit:pw@10.0.0.5:5672/\n')
    files = {trove_config.TROVE_CONF: server,
             trove_config.GUESTAGENT_CONF: tmp_path / 'guest.conf'}
    port = types.SimpleNamespace(
        id='p', mac_address='m', fixed_ips=[{'ip_address': '192.0.2.9'}])
    plugged = []
    monkeypatch.setattr(
        instance_prereqs, 'plug_host_port',
        lambda port, cidr, bridge: plugged.append((port.id, cidr, bridge))
        or [results.Row('host-interface', 'trove-mgmt', results.OK)])
    context = steps.Context(
        prepared=instance_prereqs.Prepared([], port=port))
    devstack._host_messaging(plan(config_files=files), context)
    assert plugged == [('p', '192.168.254.0/24', 'br-int')]
    assert context.guest_transport_url == \
        'rabbit://stackrabbit:pw@192.0.2.9:5672/'
    context = steps.Context(prepared=instance_prereqs.Prepared([]))
    assert devstack._host_messaging(plan(config_files=files), context) == []
    assert context.guest_transport_url is None


def test_guests_reach_messaging_through_the_gateway(tmp_path):
    server = tmp_path / 'trove.conf'
    server.write_text('[DEFAULT]\ntransport_url = '
                      'rabbit://stackrabbit:pw@127.0.0.1:5672/\n')
    files = {trove_config.TROVE_CONF: server,
             trove_config.GUESTAGENT_CONF: tmp_path / 'guest.conf'}
    extra = parse('mariadb:11.8', '--mgmt-physical-network', 'mgmt',
                  '--mgmt-gateway', '10.9.0.1', '--mgmt-shared', 'True',
                  '--mgmt-subnet-range', '10.9.0.0/24')
    assert (extra.wanted.physical_network, extra.wanted.gateway,
            extra.wanted.shared) == ('mgmt', '10.9.0.1', True)
    extra = dataclasses.replace(extra, config_files=files)
    context = steps.Context(prepared=instance_prereqs.Prepared([]))
    assert devstack._host_messaging(extra, context) == []
    assert context.guest_transport_url == \
        'rabbit://stackrabbit:pw@10.9.0.1:5672/'


def test_agent_source_checked_only_for_a_build():
    with pytest.raises(errors.UserError, match='unknown guest agent source'):
        plan(agent_source='wheel')
    with pytest.raises(errors.UserError, match='local needs the path'):
        plan(agent_source='local')
    with pytest.raises(errors.UserError, match='git needs the URL'):
        plan(agent_source='git', agent_ref='master')
    # a given image is not built
    assert plan(agent_source='local', image='/g.qcow2').agent_path is None


@pytest.mark.parametrize('argv, wanted', [
    ([], ('pip', None, None)),  # the builder's default, without the plugin
    (['--guest-agent-source', 'local', '--guest-agent-path', '/src/trove'],
     ('local', '/src/trove', None)),
    (['--guest-agent-source', 'pip', '--guest-agent-ref', '25.0.1'],
     ('pip', None, '25.0.1')),
    (['--guest-agent-source', 'git', '--guest-agent-path',
      'https://opendev.org/openstack/trove', '--guest-agent-ref', 'master'],
     ('git', 'https://opendev.org/openstack/trove', 'master')),
])
def test_agent_options_reach_the_build_request(argv, wanted):
    request = devstack.build_request(parse('mysql:8.4', *argv))
    assert (request.agent_source, request.agent_path,
            request.agent_ref) == wanted


def test_command_rejects_an_unknown_agent_source():
    with pytest.raises(SystemExit):
        parse('mysql:8.4', '--guest-agent-source', 'wheel')


def test_backup_images_come_from_the_registry_with_the_datastore_images(
        tmp_path):
    datastores = (('mariadb', '11.8'), ('postgresql', '17'))
    registry = plan(datastores=datastores, image_source='registry',
                    registry='10.0.0.1:4000')
    assert 'backup-images' in [s.name for s in devstack.plan_steps(registry)]
    # Elsewhere Trove keeps its own default (its images on quay.io).
    assert 'backup-images' not in [s.name for s in devstack.plan_steps(
        plan(datastores=datastores, image_source='embedded'))]
    # The registry runs before anything is pushed to it.
    names = [s.name for s in devstack.plan_steps(registry)]
    assert names.index('registry') < names.index('datastore-images')
    # The backup/ code: the agent's tree when it has it, else the release.
    tree = tmp_path / 'trove'
    (tree / 'backup').mkdir(parents=True)
    without = plan(agent_source='local', agent_path=str(tree))
    assert without.backup_source().is_tree is False
    (tree / 'backup' / 'main.py').write_text('')
    (tree / 'trove').mkdir()
    (tree / 'trove' / '__init__.py').write_text('')
    (tree / 'setup.cfg').write_text('[metadata]\nname = trove\n')
    assert plan(agent_source='local',
                agent_path=str(tree)).backup_source().path == str(tree)


def test_backup_images_from_an_existing_registry_beside_embedded_images(
        monkeypatch, tmp_path):
    """Datastore images embedded in the guest image, backup images pushed
    to an existing registry at one address and pulled from it at another:
    no registry started, guests trust the address they pull from."""
    from trovestack.images.datastore import backup

    pushed = []
    monkeypatch.setattr(
        backup, 'build_and_push',
        lambda datastores, push_to, pull_from, source: pushed.append(
            (push_to, pull_from)) or [])
    image = tmp_path / 'g.qcow2'
    image.write_bytes(b'x')
    extra = plan(datastores=(('mariadb', '11.8'),), image_source='embedded',
                 image=str(image), backup_image_source='registry',
                 registry='10.9.0.1:5000', registry_push='127.0.0.1:5000')
    assert extra.uses_registry() and extra.backups_from_registry()
    steps_by_name = {s.name: s for s in devstack.plan_steps(extra)}
    context = steps.Context(conn=None, image=extra.image)
    row, = steps_by_name['registry'].run(context)
    assert row.action == results.SKIPPED
    assert '127.0.0.1:5000' in row.detail
    steps_by_name['backup-images'].run(context)
    assert pushed == [('127.0.0.1:5000', '10.9.0.1:5000')]
    assert context.backup_images == {
        'mariadb': '10.9.0.1:5000/trovestack/db-backup-mariadb'}
    prepared = instance_prereqs.Prepared(rows=[], network_id='net')
    settings = devstack.instance_settings(extra, prepared,
                                          backup_images=context.backup_images)
    assert settings.insecure_registries[0] == '10.9.0.1:5000'
    # The datastore images stay the embedded ones.
    assert extra.docker_images() == {'mariadb': 'trovestack/mariadb'}


@pytest.mark.parametrize('overrides, message', [
    (dict(backup_image_source='quay'), 'valid: upstream, registry'),
    (dict(image_source='embedded', backup_image_source='registry'),
     'backup image source "registry" needs a registry address'),
])
def test_bad_backup_image_plans(overrides, message):
    with pytest.raises(errors.UserError, match=message):
        plan(**overrides)


def test_backup_options_to_plan():
    extra = parse('mariadb:11.8', '--image-source', 'embedded',
                  '--backup-image-source', 'registry', '--registry',
                  '10.9.0.1:5000', '--registry-push', '127.0.0.1:5000')
    assert extra.registry_addresses() == ('127.0.0.1:5000', '10.9.0.1:5000')
    # Empty settings of the plugin: the defaults.
    extra = parse('mariadb:11.8', '--backup-image-source', 'upstream',
                  '--registry-push', '')
    assert extra.registry_push is None and not extra.uses_registry()
