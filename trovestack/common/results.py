"""The one result-row type: a thing looked at and what happened to it.

Every step that creates, checks, updates or deletes something returns
:class:`Row` objects; commands list them as table rows (or JSON) and
chaining code (provision, the devstack orchestration) reads their fields.
"""

import dataclasses

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

    __test__ = False  # not a pytest class, whatever module imports it

    def as_dict(self):
        return dataclasses.asdict(self)


def failed(rows):
    """The rows whose action is FAILED."""
    return [row for row in rows if row.action == FAILED]
