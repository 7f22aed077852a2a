"""Datastore images embedded in a container-mode guest image.

``--embed-datastore-image mariadb:11.8`` (repeatable) names docker-archives
made by :mod:`trovestack.images.datastore` (built first when missing or out
of date). The ``trove-guest-embedded-images`` element copies them into the
image and loads them at boot; their digests are part of the build hash, so
a changed archive rebuilds the guest image.
"""

import dataclasses
import pathlib
from collections.abc import Callable
from collections.abc import Iterable

from trovestack.images import datastore as datastore_images
from trovestack.images.guest import errors

ELEMENT = 'trove-guest-embedded-images'
ENV_VARIABLE = 'TROVE_EMBEDDED_IMAGES'


@dataclasses.dataclass(frozen=True)
class EmbeddedImage:
    name: str             # datastore:version
    path: pathlib.Path    # the docker-archive on the build host
    sha256: str
    reference: str        # repository:tag that `docker load` restores


def parse(names: Iterable[str]) -> list[tuple[str, str]]:
    """['mariadb:11.8', ...] -> [(datastore, version)], duplicates once."""
    parsed = []
    for name in dict.fromkeys(names):
        datastore, _, version = name.partition(':')
        if not datastore or not version:
            raise errors.BuildError(
                '--embed-datastore-image %r: give <datastore>:<version>, '
                'e.g. mariadb:11.8' % name)
        parsed.append((datastore, version))
    return parsed


def resolve(
        names: Iterable[str],
        progress: Callable[[str], None] | None = None) -> list[EmbeddedImage]:
    """Build (or find up to date) each archive; in the order given."""
    images = []
    for datastore, version in parse(names):
        built = datastore_images.build(datastore, version, progress=progress)
        images.append(EmbeddedImage('%s:%s' % (datastore, version),
                                    pathlib.Path(built.path), built.sha256,
                                    built.reference))
    return images


def hash_value(images: Iterable['EmbeddedImage']) -> str:
    """The build-hash input: every name with its archive's digest."""
    return ' '.join('%s=%s' % (image.name, image.sha256) for image in images)


def env_value(images: Iterable['EmbeddedImage']) -> str:
    """TROVE_EMBEDDED_IMAGES for the element: archive paths, ':'-joined."""
    return ':'.join(str(image.path) for image in images)


def sidecar_value(images: Iterable['EmbeddedImage']) -> list[dict]:
    """What IMAGE.build.json records (verify-image reads the names)."""
    return [{'name': image.name, 'sha256': image.sha256,
             'image': image.reference} for image in images]
