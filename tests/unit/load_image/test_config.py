"""Unit tests of load_image.config."""

from load_image import config


def test_list_opts_names_every_option():
    (group, options), = config.list_opts()
    assert group == 'load_image'
    names = {option.name for option in options}
    assert {'guest_os', 'disk_format', 'visibility', 'upload_retries',
            'known_managers', 'prune'} <= names


def test_config_file_values(tmp_path):
    path = tmp_path / 'load.conf'
    path.write_text('[load_image]\nvisibility = public\n'
                    'known_managers = mysql,custom\n')
    conf = config.load([str(path)])
    assert conf.visibility == 'public'
    assert conf.known_managers == ['mysql', 'custom']
    assert conf.guest_os == 'debian'
