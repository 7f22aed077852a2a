"""The one exception type for problems a user can fix.

Library code raises :class:`UserError` (or a subclass) with a one-line
message that says what is wrong and, where it helps, how to fix it.  The
cliff application turns it into that line on stderr and exit status 1, in
one place (trovestack.commands.cliapp.App); nothing else catches it to
re-raise.
"""


class UserError(Exception):
    """A one-line, user-facing reason why the work could not be done."""

    exit_code = 1

    def __str__(self) -> str:
        text = super().__str__()
        # One line, whatever the cause's own message looked like.
        return ' '.join(text.split())
