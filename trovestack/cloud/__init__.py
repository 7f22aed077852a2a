"""The local cloud: a control plane on loopback that trovestack runs itself."""

from trovestack.common.errors import UserError


class CloudError(UserError):
    """The local cloud could not be brought to the asked state."""
