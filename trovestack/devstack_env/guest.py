"""The guest image the plugin loads in the container, built on the host.

In the container the plugin can not build one (diskimage-builder needs a
distribution mirror, guests can not pull from quay.io), so ``up`` builds
it here with trove-image-builder: the guest agent from the Trove tree
staged for devstack (the tree that becomes ``$TROVE_DIR`` inside, so the
control plane and the agent are one tree's code) and the sample's
datastore images embedded.  An unchanged tree and datastores skip the
build; a changed tree only replaces the agent (the builder's agent-only
path).
"""

import pathlib
import re
from collections.abc import Callable

from trovestack.common.errors import UserError
from trovestack.images.guest import builder
from trovestack.images.guest import guest_agent
from trovestack.orchestration import kickstart

# The plugin's default (devstack/settings) when a sample names none.
DEFAULT_DATASTORES = ('mysql:8.4',)
_ASSIGNMENT = re.compile(r'^\s*TROVE_DATASTORES=(?P<value>\S*)\s*$')


def sample_datastores(sample: pathlib.Path) -> list[str]:
    """The ``datastore:version`` list of a sample's TROVE_DATASTORES (its
    last assignment in localrc), else the plugin's default."""
    _, sections = kickstart.parse_sections(sample.read_text())
    value = None
    for lines in (body for key, body in sections
                  if key == kickstart.LOCALRC_SECTION):
        for line in lines:
            match = _ASSIGNMENT.match(line)
            if match:
                value = match.group('value').strip('"\'')
    if value is None:
        return list(DEFAULT_DATASTORES)
    found = [item for item in value.split(',') if item]
    for item in found:
        if not re.fullmatch(r'[a-z]+:[0-9][0-9a-z.\-]*', item):
            raise UserError(f'{sample}: TROVE_DATASTORES entry {item!r} is '
                            'not datastore:version')
    return found


def build_request(datastores: list[str],
                  trove_tree: pathlib.Path) -> builder.BuildRequest:
    """One guest image for ``datastores`` (their images embedded) with the
    agent of ``trove_tree``."""
    name, _, version = datastores[0].partition(':')
    return builder.BuildRequest(
        datastore=name, datastore_version=version,
        agent_source=guest_agent.LOCAL, agent_path=str(trove_tree),
        embed_datastore_images=tuple(dict.fromkeys(datastores)))


def build(sample: pathlib.Path, trove_tree: pathlib.Path,
          progress: Callable[[str], None] | None = None
          ) -> builder.BuildResult:
    """Build (or find up to date) the guest image of ``sample``."""
    return builder.build_image(
        build_request(sample_datastores(sample), trove_tree),
        progress=progress)
