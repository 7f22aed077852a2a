"""Datastore and guest OS plugins, found through stevedore entry points."""

import dataclasses

from stevedore import extension

DATASTORE_NAMESPACE = 'trovestack.image_builder.datastores'
GUEST_OS_NAMESPACE = 'trovestack.image_builder.guest_os'

CONTAINER = 'container'
PACKAGE = 'package'
MODES = (CONTAINER, PACKAGE)


@dataclasses.dataclass(frozen=True)
class DatastorePlugin:
    """What a datastore needs in a guest image, per build mode.

    ``package_versions`` maps (guest OS, release) to the version the
    distribution packages; package mode only builds that version.
    """

    name: str
    versions: tuple
    default_version: str
    modes: tuple
    package_elements: tuple = ()
    package_versions: dict = dataclasses.field(default_factory=dict)
    note: str = ''

    def elements(self, mode):
        """DIB elements this datastore adds in ``mode``."""
        if mode == PACKAGE:
            return self.package_elements
        return ()

    def packaged_version(self, guest_os, release):
        return self.package_versions.get((guest_os, release))


@dataclasses.dataclass(frozen=True)
class GuestOSPlugin:
    """A guest distribution: its DIB element, releases and mirrors."""

    name: str
    dib_element: str
    releases: tuple
    default_release: str
    python_versions: dict
    archive_name: str
    security_mirror_env: str = ''
    upstream_mirror: str = ''
    note: str = ''

    def python_version(self, release):
        return self.python_versions[release]


def _load(namespace):
    manager = extension.ExtensionManager(namespace, invoke_on_load=False)
    return {ext.name: ext.plugin for ext in manager}


def datastores():
    """All datastore plugins by name."""
    return _load(DATASTORE_NAMESPACE)


def guest_oses():
    """All guest OS plugins by name."""
    return _load(GUEST_OS_NAMESPACE)
