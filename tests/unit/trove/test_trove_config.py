"""trovestack.trove.trove_config: typed settings -> Trove's INI options."""

import pytest
from oslo_config import cfg as oslo_cfg
from oslo_messaging import opts as messaging_opts
from trove.common import cfg as trove_cfg

from trovestack.common import results
from trovestack.trove import trove_config

NET = '6c1f7a3e-0000-4000-8000-000000000001'
SG = '6c1f7a3e-0000-4000-8000-000000000002'
MESSAGING_DEFAULT_OPTIONS = {opt.name for group, options
                             in messaging_opts.list_opts()
                             if group in (None, 'DEFAULT')
                             for opt in options}


def full_settings(**overrides):
    values = dict(
        management_networks=[NET],
        management_security_groups=[SG],
        docker_images=trove_config.docker_images(
            ['mariadb', 'postgresql'], source='registry',
            registry='10.0.0.1:5000'),
        insecure_registries=['10.0.0.1:5000'],
        volume_type='lvmdriver-1',
        guest_transport_url='rabbit://trove:pw@10.0.0.1:5672/trove',
        keypair='trove-mgmt')
    values.update(overrides)
    return trove_config.InstanceSettings(**values)


def _registered(section, option):
    conf = trove_cfg.CONF
    if section == 'DEFAULT' and option in MESSAGING_DEFAULT_OPTIONS:
        return True  # oslo.messaging registers them when Trove starts
    group = conf if section == 'DEFAULT' else conf[section]
    return option in group


def test_every_option_is_one_trove_26_registers():
    config = trove_config.instance_config(full_settings())
    for sections in config.values():
        for section, options in sections.items():
            for option in options:
                assert _registered(section, option), f'[{section}] {option}'


def test_files_and_where_options_go():
    config = trove_config.instance_config(full_settings())
    server = config['trove.conf']
    guest = config['trove-guestagent.conf']
    assert server['DEFAULT']['management_networks'] == NET
    assert server['DEFAULT']['management_security_groups'] == SG
    assert server['DEFAULT']['nova_keypair'] == 'trove-mgmt'
    assert server['DEFAULT']['docker_insecure_registries'] == '10.0.0.1:5000'
    assert server['DEFAULT']['cinder_volume_type'] == 'lvmdriver-1'
    assert server['DEFAULT']['use_nova_server_config_drive'] == 'True'
    assert server['network']['network_isolation'] == 'False'
    assert server['mariadb']['volume_support'] == 'True'
    assert guest['mariadb']['docker_image'] == \
        '10.0.0.1:5000/trovestack/mariadb'
    assert guest['postgresql']['docker_image'] == \
        '10.0.0.1:5000/trovestack/postgresql'
    assert guest['DEFAULT']['transport_url'].startswith('rabbit://')
    assert guest['DEFAULT']['state_change_wait_time'] == '900'
    assert 'docker_image' not in server.get('mariadb', {})
    assert 'management_networks' not in guest['DEFAULT']


def test_values_are_strings():
    config = trove_config.instance_config(full_settings())
    for sections in config.values():
        for options in sections.values():
            assert all(isinstance(v, str) for v in options.values())


def test_minimal_settings_leave_optional_options_out():
    config = trove_config.instance_config(trove_config.InstanceSettings())
    default = config['trove.conf']['DEFAULT']
    for option in ('management_networks', 'management_security_groups',
                   'nova_keypair', 'docker_insecure_registries',
                   'cinder_volume_type'):
        assert option not in default
    assert 'transport_url' not in config['trove-guestagent.conf']['DEFAULT']


def test_no_volume_support_drops_volume_type():
    config = trove_config.instance_config(
        full_settings(volume_support=False))
    server = config['trove.conf']
    assert server['DEFAULT']['trove_volume_support'] == 'False'
    assert server['postgresql']['volume_support'] == 'False'
    assert 'cinder_volume_type' not in server['DEFAULT']


def test_tcg_timeouts_exceed_trove_defaults():
    for field in ('usage_timeout', 'agent_call_high_timeout',
                  'state_change_wait_time'):
        assert getattr(trove_config.TCG_TIMEOUTS, field) > \
            getattr(trove_config.TROVE_DEFAULT_TIMEOUTS, field)


def test_trove_default_timeouts_match_installed_trove():
    conf = trove_cfg.CONF
    for field, value in vars(trove_config.TROVE_DEFAULT_TIMEOUTS).items():
        assert conf[field] == value, field


def test_trove_default_polling_matches_installed_trove():
    conf = trove_cfg.CONF
    for field, value in vars(trove_config.TROVE_DEFAULT_POLLING).items():
        assert conf[field] == value, field


def test_polling_goes_to_the_side_that_polls():
    config = trove_config.instance_config(trove_config.InstanceSettings(
        polling=trove_config.Polling(usage_sleep_time=2,
                                     state_change_poll_time=3,
                                     state_healthy_counts=4)))
    server = config['trove.conf']['DEFAULT']
    guest = config['trove-guestagent.conf']['DEFAULT']
    assert server['usage_sleep_time'] == '2'
    assert guest['state_change_poll_time'] == '3'
    assert guest['state_healthy_counts'] == '4'
    assert 'usage_sleep_time' not in guest
    assert 'state_healthy_counts' not in server


@pytest.mark.parametrize('value', [0, -1, 'one', False])
def test_bad_polling_rejected(value):
    with pytest.raises(ValueError, match='state_healthy_counts'):
        trove_config.Polling(state_healthy_counts=value)


@pytest.mark.parametrize('value', [0, -5, 'ten', True])
def test_bad_timeout_rejected(value):
    with pytest.raises(ValueError, match='usage_timeout'):
        trove_config.Timeouts(usage_timeout=value)


def test_one_management_network_only():
    with pytest.raises(ValueError, match='one management network'):
        trove_config.InstanceSettings(management_networks=['a', 'b'])


def test_unknown_datastore_image_rejected():
    with pytest.raises(ValueError, match='known: mysql, mariadb, postgresql'):
        trove_config.InstanceSettings(docker_images={'redis': 'redis'})


@pytest.mark.parametrize('source,expected', [
    ('upstream', 'quay.io/openstack.trove/postgres'),
    ('embedded', 'trovestack/postgresql'),
    ('registry', '127.0.0.1:5000/trovestack/postgresql'),
])
def test_docker_images_sources(source, expected):
    images = trove_config.docker_images(['postgresql', 'postgresql'],
                                        source=source,
                                        registry='127.0.0.1:5000')
    assert images == {'postgresql': expected}


def test_docker_images_overrides_and_errors():
    images = trove_config.docker_images(
        ['mysql'], overrides={'mysql': 'example/mysql'})
    assert images == {'mysql': 'example/mysql'}
    with pytest.raises(ValueError, match='needs a registry'):
        trove_config.docker_images(['mysql'], source='registry')
    with pytest.raises(ValueError, match='unknown image source'):
        trove_config.docker_images(['mysql'], source='hub')
    with pytest.raises(ValueError, match="'cassandra'"):
        trove_config.docker_images(['cassandra'])


def test_apply_sets_only_its_options_and_converges(tmp_path):
    server = tmp_path / 'trove.conf'
    server.write_text('[DEFAULT]\n# keep me\ndebug = True\n'
                      'usage_timeout = 10\n\n[database]\nconnection = x\n')
    guest = tmp_path / 'trove-guestagent.conf'
    paths = {'trove.conf': server, 'trove-guestagent.conf': guest}
    config = trove_config.instance_config(full_settings())

    rows = trove_config.apply(config, paths, dry_run=True)
    assert {r.action for r in rows} == {results.WOULD_UPDATE}
    assert not guest.exists()

    rows = trove_config.apply(config, paths)
    assert {r.action for r in rows} == {results.UPDATED}
    assert 'pw@' not in ' '.join(r.detail for r in rows)
    text = server.read_text()
    assert '# keep me\ndebug = True\n' in text
    assert 'usage_timeout = 3600' in text and 'usage_timeout = 10' not in text
    assert '[database]\nconnection = x\n' in text
    parser = oslo_cfg.ConfigParser(str(guest), {})
    parser.parse()

    rows = trove_config.apply(config, paths)
    assert [r.action for r in rows] == [results.UNCHANGED] * 2


def test_local_repository_is_the_datastore_images_name():
    from trovestack.images.datastore import datastores as offline

    for name in offline.supported():
        datastore, version = name.split(':')
        spec = offline.find(datastore, version)
        assert trove_config.docker_images(
            [datastore], source='embedded')[datastore] == spec.repository


def test_guest_user_owns_injected_files():
    default = trove_config.instance_config(trove_config.InstanceSettings())
    assert default['trove.conf']['DEFAULT']['injected_config_owner'] == \
        trove_config.GUEST_USER
    ubuntu = trove_config.instance_config(
        trove_config.InstanceSettings(guest_user='ubuntu'))
    assert ubuntu['trove.conf']['DEFAULT']['injected_config_owner'] == \
        'ubuntu'
    unset = trove_config.instance_config(
        trove_config.InstanceSettings(guest_user=None))
    assert 'injected_config_owner' not in unset['trove.conf']['DEFAULT']


@pytest.mark.parametrize('name', ['Ubuntu', '', '9lives', 'a b', 'x' * 33])
def test_bad_guest_user_rejected(name):
    with pytest.raises(ValueError, match='not a user name'):
        trove_config.InstanceSettings(guest_user=name)


def test_limits_are_trove_26_options_with_its_defaults():
    conf = trove_cfg.CONF
    for name, default in trove_config.LIMITS.items():
        assert conf[name] == default, name
    assert trove_config.limits_config({}) == {'trove.conf': {'DEFAULT': {}}}
    assert trove_config.limits_config({'max_accepted_volume_size': 20}) == {
        'trove.conf': {'DEFAULT': {'max_accepted_volume_size': '20'}}}


@pytest.mark.parametrize('limits, message', [
    ({'max_backups': 3}, 'unknown Trove limit max_backups'),
    ({'max_volumes_per_tenant': 0}, 'must be a positive number'),
    ({'max_instances_per_tenant': '5'}, 'must be a positive number'),
])
def test_bad_limits_rejected(limits, message):
    with pytest.raises(ValueError, match=message):
        trove_config.limits_config(limits)


def test_images_own_accounts_are_not_the_users():
    """The health-check account of MariaDB's images stays out of `database
    user list` (Trove's own ignored accounts kept), in both files."""
    settings = trove_config.InstanceSettings(
        docker_images=trove_config.docker_images(['mariadb', 'postgresql']))
    config = trove_config.instance_config(settings)
    for name in (trove_config.TROVE_CONF, trove_config.GUESTAGENT_CONF):
        assert config[name]['mariadb']['ignore_users'] == \
            'os_admin,root,healthcheck'
        assert config[name]['postgresql']['ignore_users'] == \
            'os_admin,postgres'


@pytest.mark.parametrize('datastore', trove_config.DATASTORES)
def test_ignored_users_keep_troves_own(datastore):
    troves = list(trove_cfg.CONF.get(datastore).ignore_users)
    assert list(trove_config.IGNORED_USERS[datastore][:len(troves)]) == troves
