import os
import stat

from trovestack.common import ini

SAMPLE = """# tempest settings, hand edited
[DEFAULT]
log_dir = /var/log ; trailing

[database]
# which flavor
flavor_id = 1
build_interval=5
multi = first
    second line

[identity]
uri_v3 = http://keystone/v3
"""


def test_get_reads_values_and_continuations():
    document = ini.IniFile(SAMPLE)
    assert document.get('database', 'flavor_id') == '1'
    assert document.get('database', 'build_interval') == '5'
    assert document.get('database', 'missing') is None
    assert document.get('nosection', 'flavor_id') is None
    assert document.sections() == ['DEFAULT', 'database', 'identity']
    assert document.options('database') == ['flavor_id', 'build_interval',
                                            'multi']


def test_set_existing_replaces_only_that_line():
    document = ini.IniFile(SAMPLE)
    assert document.set('database', 'flavor_id', 'd3') == '1'
    expected = SAMPLE.replace('flavor_id = 1', 'flavor_id = d3')
    assert document.text() == expected


def test_set_drops_continuation_lines_of_replaced_value():
    document = ini.IniFile(SAMPLE)
    document.set('database', 'multi', 'one')
    assert 'second line' not in document.text()
    assert document.get('identity', 'uri_v3') == 'http://keystone/v3'


def test_new_option_goes_after_last_option_of_section():
    document = ini.IniFile(SAMPLE)
    assert document.set('database', 'resize_flavor_id', 'd4') is None
    lines = document.text().splitlines()
    assert lines[lines.index('    second line') + 1] == 'resize_flavor_id = d4'
    # Everything that was there is still there, in order.
    assert [line for line in lines if line != 'resize_flavor_id = d4'] == \
        SAMPLE.splitlines()


def test_new_section_is_appended():
    document = ini.IniFile(SAMPLE)
    document.set('service_available', 'trove', 'True')
    assert document.text() == SAMPLE + '\n[service_available]\ntrove = True\n'


def test_duplicates_in_section_all_get_the_value():
    document = ini.IniFile('[a]\nx = 1\ny = 2\nx = 3\n[b]\nx = 9\n')
    document.set('a', 'x', '5')
    assert document.text() == '[a]\nx = 5\ny = 2\nx = 5\n[b]\nx = 9\n'


def test_missing_final_newline_and_empty_document():
    document = ini.IniFile('[a]\nx = 1')
    document.set('a', 'y', '2')
    assert document.text() == '[a]\nx = 1\ny = 2\n'
    empty = ini.IniFile('')
    empty.set('database', 'flavor_id', 'd3')
    assert empty.text() == '[database]\nflavor_id = d3\n'


def test_comment_lines_are_not_options():
    document = ini.IniFile('[a]\n#x = 1\n;x = 2\n')
    assert document.get('a', 'x') is None
    document.set('a', 'x', '3')
    # Like devstack's iniset: right under the header of an empty section.
    assert document.text() == '[a]\nx = 3\n#x = 1\n;x = 2\n'


def test_save_is_atomic_and_keeps_mode(tmp_path):
    path = tmp_path / 'tempest.conf'
    path.write_text(SAMPLE)
    os.chmod(path, 0o640)
    document = ini.IniFile.load(path)
    document.set('database', 'flavor_id', 'd3')
    document.save(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640
    assert ini.IniFile.load(path).get('database', 'flavor_id') == 'd3'
    assert sorted(p.name for p in tmp_path.iterdir()) == ['tempest.conf']


def test_load_missing_file_is_empty(tmp_path):
    assert ini.IniFile.load(tmp_path / 'none.conf').text() == ''


def test_render_writes_sections_in_order():
    text = ini.render({'DEFAULT': {'debug': 'false', 'host': 'h'},
                       'database': {'connection': 'sqlite://'}})
    assert text == ('[DEFAULT]\ndebug = false\nhost = h\n\n'
                    '[database]\nconnection = sqlite://\n')
    assert ini.IniFile(text).get('database', 'connection') == 'sqlite://'
