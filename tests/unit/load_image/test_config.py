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


def test_sample_config_is_up_to_date(tmp_path):
    import pathlib
    import subprocess
    import sys

    generator = pathlib.Path(sys.executable).parent / 'oslo-config-generator'
    fresh = tmp_path / 'sample.conf'
    subprocess.run([str(generator), '--namespace', 'load_image',
                    '--output-file', str(fresh)], check=True)
    sample = (pathlib.Path(__file__).parents[3] / 'etc' /
              'load-trove-image.conf.sample')
    assert fresh.read_text() == sample.read_text(), (
        'regenerate with: oslo-config-generator --namespace load_image '
        '--output-file etc/load-trove-image.conf.sample')


def test_defaults_without_files_are_the_options_defaults(tmp_path):
    empty = tmp_path / 'empty.conf'
    empty.write_text('')
    from_files = config.load([str(empty)])
    defaults = config.load()
    (_, options), = config.list_opts()
    for option in options:
        assert getattr(defaults, option.name) == \
            getattr(from_files, option.name), option.name
