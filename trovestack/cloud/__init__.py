"""The local cloud: a control plane on loopback that trovestack runs itself."""

from trovestack.common.errors import UserError


class LocalCloudError(UserError):
    """The local cloud could not be brought to the asked state (named apart
    from trovestack.common.connection.CloudError: a cloud that can not be
    used)."""
