"""Trove datastores and versions through the management API (admin only).

Versions are identified the way Trove 26 does: datastore name + version name
+ version number (the number defaults to the name).  register_version()
finds or creates exactly that version and patches only what differs, so a
re-run never makes a duplicate.
"""

import dataclasses
import json
import logging
import pathlib
import re
from collections.abc import Callable
from collections.abc import Iterable
from typing import Any
from typing import TypeVar

from troveclient import exceptions as trove_exc

from trovestack.common import files
from trovestack.common.errors import UserError

LOG = logging.getLogger(__name__)

_T = TypeVar('_T')

# Guest managers Trove ships (trove.common.constants.REGISTRY_EXT_DEFAULTS);
# a cloud can add its own with datastore_registry_ext, hence the option.
KNOWN_MANAGERS = ('mariadb', 'mysql', 'postgresql')
# The guest agent runs the datastore as a container image tagged with the
# version, so a version must be a valid container image tag.
VERSION_PATTERN = re.compile(r'^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$')
NAME_PATTERN = re.compile(r'^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$')
# data_type values the management API accepts for configuration parameters.
API_PARAMETER_TYPES = ('integer', 'string')


class DatastoreError(UserError, RuntimeError):
    """A datastore operation that cannot be done (one line for the user)."""


@dataclasses.dataclass
class VersionResult:
    """Where a datastore version stands after register/activate."""

    datastore: str
    datastore_id: str
    version: str
    version_number: str
    version_id: str
    action: str  # 'created', 'updated' or 'unchanged'
    default: bool
    active: bool


@dataclasses.dataclass
class ParametersResult:
    """What loading a validation-rules.json did, by parameter name
    (load_config_parameters() through the API, or load_image.parameters
    through trove-manage)."""

    created: list = dataclasses.field(default_factory=list)
    updated: list = dataclasses.field(default_factory=list)
    unchanged: list = dataclasses.field(default_factory=list)
    # Not loaded: the parameters the management API cannot take.
    skipped: list = dataclasses.field(default_factory=list)
    via: str = 'api'  # or 'trove-manage'
    total: int = 0  # the parameters in the file

    @property
    def loaded(self) -> int:
        """How many of the file's parameters Trove has now."""
        return len(self.created) + len(self.updated) + len(self.unchanged)

    def counts(self) -> str:
        """'created 1, updated 0, unchanged 2, skipped 0'."""
        return (f'created {len(self.created)}, updated '
                f'{len(self.updated)}, unchanged {len(self.unchanged)}, '
                f'skipped {len(self.skipped)}')

    def summary(self) -> str:
        """One line: how many were loaded, which way, what was not."""
        text = f'{self.loaded} of {self.total} via {self.via}'
        if self.skipped:
            text += (f'; not loaded (the API cannot take them): '
                     f'{", ".join(self.skipped)}')
        return text


def validate_name(kind: str, value: str) -> str:
    """Return ``value`` if it is a usable datastore name, else raise."""
    if not NAME_PATTERN.match(value or ''):
        raise DatastoreError(
            f'invalid {kind} {value!r}: use letters, digits, ".", "_" or "-", '
            'starting with a letter or digit')
    return value


def validate_version(value: str) -> str:
    """Return ``value`` if it is a usable version string, else raise."""
    if not VERSION_PATTERN.match(value or ''):
        raise DatastoreError(
            f'invalid version {value!r}: a version is at most 128 letters, '
            'digits, ".", "_" or "-", starting with a letter or digit '
            '(it becomes the container image tag in the guest)')
    return value


def validate_manager(manager: str,
                     known: Iterable[str] = KNOWN_MANAGERS) -> str:
    """Return ``manager`` if Trove has a guest manager of that name."""
    if manager not in known:
        raise DatastoreError(
            f'unknown datastore manager {manager!r}; valid managers: '
            f'{", ".join(sorted(known))}')
    return manager


def list_versions(trove: Any, datastore: str | None = None) -> list[Any]:
    """All versions (active or not), optionally of one datastore only."""
    versions = _mgmt_call(trove.mgmt_ds_versions.list)
    return [v for v in versions
            if datastore is None or v.datastore_name == datastore]


def find_version(trove: Any, datastore: str, version: str,
                 version_number: str | None = None) -> Any:
    """The version with this name and number, or None."""
    number = version_number or version
    for candidate in list_versions(trove, datastore):
        if candidate.name == version and candidate.version == number:
            return candidate
    return None


def register_version(trove: Any, *, datastore: str, version: str, manager: str,
                     image_id: str, image_tags: Iterable[str] = (),
                     packages: Iterable[str] = (), active: bool = True,
                     version_number: str | None = None) -> VersionResult:
    """Create the datastore version or update it to point at ``image_id``.

    The datastore is created by Trove if missing.  Returns a VersionResult
    whose action is 'created', 'updated' (with only the differing fields
    patched) or 'unchanged'.
    """
    number = version_number or version
    wanted = {
        'datastore_manager': manager,
        'image': image_id,
        'image_tags': sorted(set(image_tags)),
        'packages': list(packages),
        'active': bool(active),
    }
    # Runs on this host take turns: Trove's create of a version another
    # request is creating updates that one and answers 202 to both, so each
    # would say it created it.  Runs on other hosts still converge (one
    # version), through the lookup after a refused create.
    with files.exclusive_lock(_version_lock(trove, datastore, version,
                                            number)):
        existing = find_version(trove, datastore, version, number)
        if existing is None:
            created = _create_version(trove, datastore, version, number,
                                      wanted)
            if created is not None:
                return _result(created, 'created')
            # A concurrent run created it first: converge on that one.
            existing = find_version(trove, datastore, version, number)
    changes = _differences(existing, wanted)
    if not changes:
        LOG.info('Datastore version %s %s is up to date', datastore, version)
        return _result(existing, 'unchanged')
    LOG.info('Updating datastore version %s %s: %s', datastore, version,
             ', '.join(sorted(changes)))
    _mgmt_call(trove.mgmt_ds_versions.edit, existing.id,
               **_edit_arguments(changes))
    return _result(_mgmt_call(trove.mgmt_ds_versions.get, existing.id),
                   'updated')


def _version_lock(trove: Any, datastore: str, version: str,
                  number: str) -> pathlib.Path:
    """The lock file of one version on one Trove (its endpoint)."""
    try:
        endpoint = trove.client.get_endpoint() or ''
    except Exception:  # noqa: BLE001 - a client without one: any Trove
        endpoint = ''
    return files.key_lock_path(
        'datastore-version', f'{endpoint}|{datastore}|{version}|{number}')


def _create_version(trove: Any, datastore: str, version: str, number: str,
                    wanted: dict[str, Any], attempts: int = 3) -> Any:
    """Create the version; None when a concurrent run created it first.

    Trove refuses a version that exists, and a datastore created at the
    same moment by another run fails on its unique name: both are retried
    after looking again.
    """
    for attempt in range(1, attempts + 1):
        LOG.info('Creating datastore version %s %s (%s)', datastore,
                 version, number)
        try:
            _mgmt_call(
                trove.mgmt_ds_versions.create, version, datastore,
                wanted['datastore_manager'], wanted['image'],
                packages=wanted['packages'],
                active=_json_bool(wanted['active']), default='false',
                image_tags=wanted['image_tags'], version=number)
        except DatastoreError:
            if find_version(trove, datastore, version, number) is not None:
                return None
            if attempt == attempts:
                raise
            continue
        # The API answers 202 without a body: look the new version up.
        return find_version(trove, datastore, version, number)


def set_default_version(trove: Any, datastore: str, version: str, *,
                        version_number: str | None = None,
                        exclusive: bool = False) -> VersionResult:
    """Make ``version`` the active default of ``datastore``.

    With ``exclusive`` the other versions of the datastore are marked
    inactive.  Idempotent; raises DatastoreError naming what exists when the
    datastore or version is unknown.
    """
    versions = list_versions(trove, datastore)
    if not versions:
        known = sorted({v.datastore_name for v in list_versions(trove)})
        raise DatastoreError(
            f'datastore {datastore!r} not found; datastores: '
            f'{", ".join(known) or "none"}')
    target = _pick_version(versions, datastore, version, version_number)
    action = 'unchanged'
    if not (target.default and target.active):
        _check_default_unambiguous(versions, target)
        LOG.info('Making %s %s the default version', datastore, version)
        _mgmt_call(trove.mgmt_ds_versions.edit, target.id, active='true',
                   default='true')
        action = 'updated'
    if exclusive:
        for other in versions:
            if other.id != target.id and other.active:
                LOG.info('Marking %s %s (%s) inactive', datastore,
                         other.name, other.version)
                _mgmt_call(trove.mgmt_ds_versions.edit, other.id,
                           active='false')
                action = 'updated'
    if action == 'unchanged':
        return _result(target, action)
    return _result(_mgmt_call(trove.mgmt_ds_versions.get, target.id), action)


def image_ids_in_use(trove: Any) -> set[str]:
    """Ids of the Glance images any datastore version points at."""
    return {v.image for v in list_versions(trove) if v.image}


def version_parameters(client: Any, version_id: str) -> list[Any]:
    """The version's configuration parameters through ``client`` (a
    load_image.trove_api.MgmtClient); DatastoreError when Trove refuses."""
    return _mgmt_call(client.parameters, version_id)


def load_config_parameters(
        trove: Any, version_id: str, path: pathlib.Path | str, *,
        existing: list[Any] | None = None) -> ParametersResult:
    """Load a validation-rules.json into the version's parameters.

    The same file ``trove-manage db_load_datastore_config_parameters`` reads,
    but through the management API: existing parameters are updated only
    when they differ.  The API accepts only the 'string' data type and
    'integer' with both min and max; other parameters are reported in
    ``skipped``.  A parameter Trove refuses is logged and the others are
    still loaded; DatastoreError then names the failures.

    ``trove``: a troveclient v1 Client, or a callable making one (called
    only when something must change); ``existing``: the version's
    parameters when the caller listed them already (records with name,
    restart_required, type, max_size, min_size).
    """
    rules = read_rules(path)
    manager = None
    if existing is None:
        manager = _parameter_manager(trove)
        existing = _mgmt_call(manager.list_all_parameter_by_version,
                              version_id)
    by_name = {p.name: p for p in existing}
    result = ParametersResult(total=len(rules))
    failures = []
    for rule in rules:
        name = rule['name']
        if not _api_can_store(rule):
            result.skipped.append(name)
            continue
        fields = rule_fields(rule)
        if name in by_name and not parameter_differs(by_name[name],
                                                        fields):
            result.unchanged.append(name)
            continue
        manager = manager or _parameter_manager(trove)
        try:
            if name not in by_name:
                _mgmt_call(manager.create, version_id, name, **fields)
                result.created.append(name)
            else:
                _mgmt_call(manager.modify, version_id, name, **fields)
                result.updated.append(name)
        except DatastoreError as exc:
            LOG.error('Configuration parameter %s: %s', name, exc)
            failures.append(name)
    if result.skipped:
        LOG.warning('The Trove management API accepts only string '
                    'parameters and integer ones with both a min and a max; '
                    '%d of %d were not loaded (trove-manage with Trove\'s '
                    'trove.conf loads them all: --trove-config): %s',
                    len(result.skipped), len(rules),
                    ', '.join(result.skipped))
    if failures:
        raise DatastoreError(
            f'failed to load {len(failures)} of {len(rules)} configuration '
            f'parameters: {", ".join(failures)}')
    return result


def _parameter_manager(trove: Any) -> Any:
    from troveclient.v1 import management

    return management.MgmtConfigurationParameters(
        trove() if callable(trove) else trove)


def _api_can_store(rule: dict[str, Any]) -> bool:
    if rule['type'] == 'integer':
        return rule.get('min') is not None and rule.get('max') is not None
    return rule['type'] in API_PARAMETER_TYPES


def rule_fields(rule: dict[str, Any]) -> dict[str, Any]:
    """A rule's fields as Trove stores them (limits within LIMIT_MAX)."""
    return {
        'restart_required': bool(rule.get('restart_required', False)),
        'data_type': rule['type'],
        'max_size': _size(rule.get('max')),
        'min_size': _size(rule.get('min')),
    }


def read_rules(path: pathlib.Path | str) -> list[dict[str, Any]]:
    """The "configuration-parameters" entries of a validation-rules.json;
    DatastoreError when it cannot be read or is not one."""
    try:
        with open(path) as stream:
            rules = json.load(stream)['configuration-parameters']
        incomplete = [rule for rule in rules
                      if 'name' not in rule or 'type' not in rule]
    except OSError as exc:
        raise DatastoreError(
            f'cannot read configuration parameters {path}: '
            f'{exc.strerror}') from exc
    except (ValueError, KeyError, TypeError) as exc:
        raise DatastoreError(
            f'{path} is not a validation-rules.json file with '
            f'"configuration-parameters" entries ({exc})') from exc
    if incomplete:
        raise DatastoreError(
            f'{path}: {len(incomplete)} parameters lack a name or a type')
    return rules


# Trove keeps a parameter's limits in a signed 64-bit column: MariaDB's
# 2**64-1 maxima made its API fail with a 500.
LIMIT_MAX = 2 ** 63 - 1


def _size(value: str | int | None) -> int | None:
    return None if value is None else \
        max(min(int(value), LIMIT_MAX), -LIMIT_MAX)


def parameter_differs(current: Any, fields: dict[str, Any]) -> bool:
    """True when a listed parameter differs from ``fields``
    (rule_fields())."""
    # The API shows the data type as 'type' and leaves out limits of 0.
    def limit(value: str | int | None) -> int:
        return _size(value) or 0

    return (bool(current.restart_required) != fields['restart_required']
            or getattr(current, 'type', None) != fields['data_type']
            or limit(getattr(current, 'max_size', None))
            != limit(fields['max_size'])
            or limit(getattr(current, 'min_size', None))
            != limit(fields['min_size']))


def matching_versions(versions: Iterable[Any], version: str,
                      version_number: str | None = None) -> list[Any]:
    """The versions named ``version`` (numbered ``version_number``, if
    given); the one lookup of a version every tool here uses."""
    return [v for v in versions if v.name == version
            and (version_number is None
                 or getattr(v, 'version', None) == version_number)]


def _pick_version(versions: Iterable[Any], datastore: str, version: str,
                  version_number: str | None) -> Any:
    matches = matching_versions(versions, version, version_number)
    if len(matches) == 1:
        return matches[0]
    names = ', '.join(sorted(_label(v) for v in versions))
    if not matches:
        raise DatastoreError(
            f'datastore {datastore!r} has no version {version!r}; '
            f'versions: {names}')
    raise DatastoreError(
        f'datastore {datastore!r} has several versions named {version!r} '
        f'({names}); give the version number')


def _check_default_unambiguous(versions: Iterable[Any], target: Any) -> None:
    # Trove records the default by version name only.
    if sum(1 for v in versions if v.name == target.name) > 1:
        raise DatastoreError(
            f'Trove cannot make {target.name!r} the default of '
            f'{target.datastore_name!r}: several versions share that name')


def _label(version: Any) -> str:
    if version.version and version.version != version.name:
        return f'{version.name} ({version.version})'
    return version.name


def _clean_list(values: Iterable[str] | None) -> list[str]:
    return sorted(v for v in (values or []) if v)


def _differences(existing: Any, wanted: dict[str, Any]) -> dict[str, Any]:
    current = {
        'datastore_manager': existing.datastore_manager,
        'image': existing.image,
        'image_tags': _clean_list(existing.image_tags),
        'packages': [p for p in (existing.packages or []) if p],
        'active': bool(existing.active),
    }
    return {key: value for key, value in wanted.items()
            if current[key] != value}


def _edit_arguments(changes: dict[str, Any]) -> dict[str, Any]:
    arguments = dict(changes)
    if 'active' in arguments:
        arguments['active'] = _json_bool(arguments['active'])
    if 'packages' in arguments and not arguments['packages']:
        # troveclient cannot send an empty package list; say so.
        LOG.warning('Trove keeps the old package list: the API cannot '
                    'clear it')
        del arguments['packages']
    return arguments


def _json_bool(value: object) -> str:
    return 'true' if value else 'false'


def _result(version: Any, action: str) -> VersionResult:
    return VersionResult(
        datastore=version.datastore_name,
        datastore_id=version.datastore_id,
        version=version.name,
        version_number=version.version,
        version_id=version.id,
        action=action,
        default=bool(version.default),
        active=bool(version.active))


def _mgmt_call(function: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
    """Call the management API; turn its failures into DatastoreError."""
    try:
        return function(*args, **kwargs)
    except trove_exc.Forbidden as exc:
        raise DatastoreError(
            'the Trove management API needs the admin role; use admin '
            'credentials (e.g. --os-cloud with an admin user)') from exc
    except trove_exc.ClientException as exc:
        message = getattr(exc, 'message', None) or str(exc)
        raise DatastoreError(
            f'Trove refused the request: {" ".join(message.split())}') \
            from exc
