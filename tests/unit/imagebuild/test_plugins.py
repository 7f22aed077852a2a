from trovestack.commands import build_image as commands
from trovestack.imagebuild import plugins


def test_entry_points_list_the_shipped_plugins():
    assert set(plugins.datastores()) >= {'mysql', 'mariadb', 'postgresql'}
    assert set(plugins.guest_oses()) >= {'debian', 'ubuntu'}


def test_each_datastore_names_elements_for_its_modes():
    for ds in plugins.datastores().values():
        assert plugins.CONTAINER in ds.modes
        assert ds.default_version in ds.versions
        if plugins.PACKAGE in ds.modes:
            assert ds.elements(plugins.PACKAGE)
        assert ds.elements(plugins.CONTAINER) == ()


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
    assert 'modes: container;' in mysql
    assert len(headers) == len(values)
