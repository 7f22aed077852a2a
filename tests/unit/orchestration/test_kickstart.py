"""Unit tests for trovestack.orchestration.kickstart."""

import pytest

from trovestack.orchestration import kickstart


def test_localrc_fragment_gets_a_header_and_the_plugin():
    text = kickstart.render_local_conf('FOO=1\n', sample_name='s',
                                       plugin='trovestack', repo='/r',
                                       ref='main')
    assert text.splitlines()[-4:] == ['[[local|localrc]]', 'FOO=1', '',
                                      'enable_plugin trovestack /r main']


def test_samples_own_enable_plugin_is_replaced_in_place():
    sample = ('# about\n[[local|localrc]]\nA=1\n'
              'enable_plugin trovestack https://example.org/x\nB=2\n'
              '[[post-config|$TROVE_CONF]]\n[DEFAULT]\ndebug = True\n')
    text = kickstart.render_local_conf(sample, sample_name='s',
                                       plugin='trovestack', repo='/r')
    lines = text.splitlines()
    assert '# about' in lines
    at = lines.index('enable_plugin trovestack /r')
    assert lines[at - 1] == 'A=1' and lines[at + 1] == 'B=2'
    assert 'https://example.org/x' not in text
    assert lines[-3:] == ['[[post-config|$TROVE_CONF]]', '[DEFAULT]',
                          'debug = True']


def test_available_samples_by_name(tmp_path):
    for name in ('mysql.conf', 'multi-datastore.conf', 'README.md'):
        (tmp_path / name).write_text('')
    assert sorted(kickstart.available_samples(tmp_path)) == [
        'multi-datastore', 'mysql']
    with pytest.raises(kickstart.KickStartError,
                       match='valid datastores: multi-datastore, mysql'):
        kickstart.find_sample('redis', tmp_path)


def test_devstack_dir_needs_its_markers(tmp_path):
    (tmp_path / 'stack.sh').write_text('')
    with pytest.raises(kickstart.KickStartError,
                       match='no functions-common'):
        kickstart.check_devstack_dir(tmp_path)


def test_backup_path_never_reuses_a_name(tmp_path):
    target = tmp_path / 'local.conf'
    assert kickstart.backup_path(target).name == 'local.conf.bak'
    (tmp_path / 'local.conf.bak').write_text('')
    assert kickstart.backup_path(target).name == 'local.conf.bak.1'


def test_plugin_name_comes_from_devstack_settings(tmp_path):
    (tmp_path / 'devstack').mkdir()
    (tmp_path / 'devstack' / 'settings').write_text(
        'X=1\ndefine_plugin other\n')
    assert kickstart.plugin_name(tmp_path) == 'other'
    assert kickstart.plugin_name(tmp_path / 'none') == 'trovestack'
