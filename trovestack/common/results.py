"""The one result-row type: a thing looked at and what happened to it.

Every step that creates, checks, updates or deletes something returns
:class:`Row` objects; commands list them as table rows (or JSON) and
chaining code (provision, the devstack orchestration) reads their fields.
"""

import dataclasses
from collections.abc import Iterable
from typing import Any

# Actions shared by every step, so that a reader learns one vocabulary.
CREATED = 'created'
UPDATED = 'updated'
UNCHANGED = 'unchanged'
DELETED = 'deleted'
SKIPPED = 'skipped'
WOULD_CREATE = 'would-create'
WOULD_UPDATE = 'would-update'
WOULD_DELETE = 'would-delete'
KEPT = 'kept'
FAILED = 'failed'
OK = 'ok'
MISSING = 'missing'
WARNING = 'warning'


@dataclasses.dataclass
class Row:
    """One resource (or check, or file) and what was or would be done."""

    kind: str
    name: str
    action: str
    detail: str = ''
    id: str = ''  # the resource's id, where it has one

    __test__ = False  # not a pytest class, whatever module imports it

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_IRREGULAR = {'written': 'would-write', 'ran': 'would-run'}


def planned(action: str) -> str:
    """The dry-run spelling of an action: 'created' -> 'would-create'
    (the one spelling every step uses); unchanged and skipped stay."""
    if action in (UNCHANGED, SKIPPED):
        return action
    if action in _IRREGULAR:
        return _IRREGULAR[action]
    return 'would-' + action[:-1] if action.endswith('ed') else action


def failed(rows: Iterable[Row]) -> list[Row]:
    """The rows whose action is FAILED."""
    return [row for row in rows if row.action == FAILED]
