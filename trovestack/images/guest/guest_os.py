"""Guest OSes shipped with trovestack (entry points in setup.cfg)."""

from trovestack.images.guest import plugins

DEBIAN = plugins.GuestOSPlugin(
    name='debian',
    dib_element='debian-minimal',
    releases=('bookworm', 'trixie'),
    default_release='bookworm',
    python_versions={'bookworm': '3.11', 'trixie': '3.13'},
    archive_name='debian',
    security_mirror_env='DIB_DEBIAN_SECURITY_MIRROR',
    upstream_mirror='http://deb.debian.org/debian',
)

UBUNTU = plugins.GuestOSPlugin(
    name='ubuntu',
    dib_element='ubuntu-minimal',
    releases=('noble', 'jammy'),
    default_release='noble',
    python_versions={'noble': '3.12', 'jammy': '3.10'},
    archive_name='ubuntu',
    upstream_mirror='http://archive.ubuntu.com/ubuntu',
    note='Upstream Trove default; needs a reachable Ubuntu mirror (--mirror).',
)
