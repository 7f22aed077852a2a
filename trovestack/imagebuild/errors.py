"""The one exception type the image builder raises for problems users fix."""


class BuildError(Exception):
    """A one-line, user-facing reason why an image can not be built."""
