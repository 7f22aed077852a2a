"""The image builder's user-facing error: a UserError like every other."""

from trovestack.common.errors import UserError


class BuildError(UserError):
    """A one-line, user-facing reason why an image can not be built."""
