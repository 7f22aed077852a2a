"""Which datastores and versions are really registered in Trove."""

import dataclasses
import logging
from collections.abc import Iterable
from typing import Any

from load_image import datastores as ds_registry
from trovestack import testenv

LOG = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class DatastoreChoice:
    """A datastore and the version tests should use."""

    name: str
    id: str
    version: str
    version_id: str
    image_id: str = ''


def parse_datastore_arg(value: str) -> tuple[str, str | None]:
    """'NAME' or 'NAME:VERSION' -> (name, version or None)."""
    name, _, version = value.partition(':')
    if not name.strip():
        raise ValueError(f'datastore {value!r} has no name')
    return name.strip(), version.strip() or None


def _text(value: object) -> str:
    # troveclient sometimes hands ids over as bytes.
    return value.decode() if isinstance(value, bytes) else str(value or '')


def registered(
        trove: Any, names: Iterable[str] | None = None,
) -> dict[str, tuple[Any, list[Any]]]:
    """{name: (datastore, [versions])} of every datastore in Trove; the
    versions are looked up only for ``names`` (default: all)."""
    found = {}
    for datastore in trove.datastores.list():
        versions = []
        if names is None or datastore.name in names:
            versions = list(trove.datastore_versions.list(datastore.id))
        found[datastore.name] = (datastore, versions)
    return found


def choose(
        trove: Any, wanted: Iterable[tuple[str, str | None]] | None = None,
) -> list[DatastoreChoice]:
    """DatastoreChoices for ``wanted`` [(name, version or None)].

    Without ``wanted`` every registered datastore with a default (or only)
    version is chosen. Unknown names or versions raise TestEnvError.
    """
    available = registered(
        trove, {name for name, _ in wanted} if wanted else None)
    if not available:
        raise testenv.TestEnvError(
            'no datastore is registered in Trove; register one first '
            '(trove-manage datastore_version_update or the mgmt API)')
    if wanted:
        # strict: a choice or TestEnvError, never None
        return [_choose_one(  # type: ignore[misc]
            available, name, version, strict=True) for name, version in wanted]
    found = [_choose_one(available, name, None, strict=False)
             for name in sorted(available)]
    choices = [choice for choice in found if choice is not None]
    if not choices:
        raise testenv.TestEnvError(
            'no registered datastore has a default version; '
            'name one with --datastore NAME:VERSION')
    return choices


def _choose_one(available: dict[str, tuple[Any, list[Any]]], name: str,
                version: str | None, *,
                strict: bool) -> DatastoreChoice | None:
    if name not in available:
        raise testenv.TestEnvError(
            f'datastore {name!r} is not registered in Trove '
            f'(registered: {", ".join(sorted(available))})')
    datastore, versions = available[name]
    if version is None:
        default_id = _text(getattr(datastore, 'default_version', ''))
        defaults = [v for v in versions if _text(v.id) == default_id]
        if not defaults and len(versions) == 1:
            defaults = versions
        if not defaults:
            if strict:
                raise testenv.TestEnvError(
                    f'datastore {name!r} has no default version; '
                    f'give one as {name}:VERSION')
            LOG.warning('Datastore %s has no default version; skipped', name)
            return None
        picked = defaults[0]
    else:
        # A version is named by its name or, failing that, its number.
        matches = (ds_registry.matching_versions(versions, version)
                   or [v for v in versions
                       if getattr(v, 'version', None) == version])
        picked = next(iter(matches), None)
        if picked is None:
            known = ', '.join(sorted(v.name for v in versions)) or 'none'
            raise testenv.TestEnvError(
                f'datastore {name!r} has no version {version!r} '
                f'(registered: {known})')
    return DatastoreChoice(name, _text(datastore.id), picked.name,
                           _text(picked.id),
                           _text(getattr(picked, 'image', '')))
