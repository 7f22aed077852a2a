from trovestack.commands import build_image as commands
from trovestack.images.guest import plugins


def test_entry_points_list_the_shipped_plugins():
    assert set(plugins.datastores()) >= {'mysql', 'mariadb', 'postgresql'}
    assert set(plugins.guest_oses()) >= {'debian', 'ubuntu'}


def test_each_datastore_default_is_one_of_its_versions():
    for ds in plugins.datastores().values():
        assert ds.default_version in ds.versions


def test_versions_follow_trove_2026_2():
    """Trove 2026.2's matrix, plus Debian bookworm's MariaDB 10.11 and
    PostgreSQL 15 (offline datastore images; doc/image-builder.md)."""
    versions = {name: set(ds.versions)
                for name, ds in plugins.datastores().items()}
    assert versions['mysql'] == {'8.0', '8.4'}
    assert versions['mariadb'] == {'10.11', '11.4', '11.8'}
    assert versions['postgresql'] == {'15', '16', '17', '18'}


def test_guest_os_defaults_are_known_releases():
    for os_ in plugins.guest_oses().values():
        assert os_.default_release in os_.releases
        for release in os_.releases:
            assert os_.python_version(release)


def test_describe_plugins_has_one_row_per_plugin():
    headers, values = commands.describe_plugins()
    assert 'datastore mysql' in headers
    assert 'guest-os debian' in headers
    mysql = values[headers.index('datastore mysql')]
    assert mysql.startswith('versions: 8.0, 8.4 (default 8.4)')
    assert len(headers) == len(values)
