"""instance_setup: one path from converged prerequisites to Trove's files."""

from trovestack.common import ini
from trovestack.trove import instance_prereqs
from trovestack.trove import instance_setup
from trovestack.trove import trove_config


def _files(tmp_path):
    return {name: tmp_path / name for name in trove_config.FILES}


def test_settings_take_the_converged_ids():
    prepared = instance_prereqs.Prepared([], 'net-1', 'sub-1', 'sg-1',
                                         'key-1')
    settings = instance_setup.instance_settings(
        prepared, docker_images={'mariadb': 'trovestack/mariadb'},
        volume_support=False)
    assert settings.management_networks == ('net-1',)
    assert settings.management_security_groups == ('sg-1',)
    assert settings.keypair == 'key-1'
    assert not settings.volume_support


def test_apply_writes_default_datastore_and_extra_then_converges(tmp_path):
    files = _files(tmp_path)
    for path in files.values():
        path.write_text('[DEFAULT]\ndebug = False\n')
    settings = instance_setup.instance_settings(
        instance_prereqs.Prepared([], 'net-1', None, None),
        docker_images={'mariadb': 'trovestack/mariadb'},
        guest_transport_url='rabbit://u:p@10.0.0.1:5672/')
    extra = {trove_config.TROVE_CONF: {'DEFAULT': {'guest_config': '/g'}}}
    rows = instance_setup.apply(settings, files, default_datastore='mariadb',
                                extra=extra)
    assert {row.action for row in rows} == {'updated'}
    server = ini.IniFile.load(files[trove_config.TROVE_CONF])
    assert server.get('DEFAULT', 'default_datastore') == 'mariadb'
    assert server.get('DEFAULT', 'guest_config') == '/g'
    assert server.get('DEFAULT', 'debug') == 'False'
    guest = ini.IniFile.load(files[trove_config.GUESTAGENT_CONF])
    assert guest.get('mariadb', 'docker_image') == 'trovestack/mariadb'
    again = instance_setup.apply(settings, files,
                                 default_datastore='mariadb', extra=extra)
    assert {row.action for row in again} == {'unchanged'}
