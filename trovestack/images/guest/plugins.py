"""Datastore and guest OS plugins, found through stevedore entry points."""

import dataclasses
from typing import Any

from stevedore import extension

DATASTORE_NAMESPACE = 'trovestack.image_builder.datastores'
GUEST_OS_NAMESPACE = 'trovestack.image_builder.guest_os'

@dataclasses.dataclass(frozen=True)
class DatastorePlugin:
    """A datastore Trove can register on a guest image: its versions.

    The guest agent runs the database in a container, so a datastore adds
    nothing to the image; it names the versions that can be registered.
    """

    name: str
    versions: tuple
    default_version: str
    note: str = ''


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

    def python_version(self, release: str) -> str:
        return self.python_versions[release]


def _load(namespace: str) -> dict[str, Any]:
    manager: extension.ExtensionManager[Any] = extension.ExtensionManager(
        namespace, invoke_on_load=False)
    return {ext.name: ext.plugin for ext in manager}


def datastores() -> dict[str, DatastorePlugin]:
    """All datastore plugins by name."""
    return _load(DATASTORE_NAMESPACE)


def guest_oses() -> dict[str, GuestOSPlugin]:
    """All guest OS plugins by name."""
    return _load(GUEST_OS_NAMESPACE)
