"""The Debian packages stack.sh installs, read from devstack's own lists.

devstack's ``files/debs/<name>`` files list packages one a line with
markers after ``#``: ``NOPRIME`` (installed later by the service's own
code, not up front), ``dist:a,b`` (only on those releases), ``not:a,b``
(never on those).  ``install_prereqs.sh`` installs the files of the
enabled services; the NOPRIME ones come from lib/* (``install_package``
calls), listed here in :data:`LATER_PACKAGES` per service.  Plugins and
projects add bindep.txt files.  The union, resolved by apt, is what the
local repository must hold for stack.sh's apt-get to work offline.
"""

import pathlib
import re
from collections.abc import Iterable

DISTRO = 'bookworm'

# devstack's package file per enabled service (functions-common's
# get_packages): the service's own file when one is named after it, and
# these shared ones by prefix.
_SHARED_FILES = (
    ('n-api', ('nova', 'glance', 'os-brick')),
    ('c-', ('cinder', 'os-brick')),
    ('s-', ('swift',)),
    ('n-', ('nova', 'os-brick')),
    ('g-', ('glance',)),
    ('key', ('keystone',)),
    ('q-', ('neutron-common',)),
    ('neutron-', ('neutron-common',)),
)

# What lib/* installs with install_package outside the files' first pass,
# by the service that makes it do so (Debian names, bookworm).
LATER_PACKAGES: dict[str, tuple[str, ...]] = {
    # lib/host's configure_ksm (ENABLE_KSMTUNED defaults to True).
    'host': ('ksmtuned',),
    'mysql': ('mariadb-server', 'mariadb-client'),
    'rabbit': ('rabbitmq-server',),
    # lib/apache: uwsgi from packages on Debian, Apache with mod_wsgi.
    'apache': ('apache2', 'uwsgi', 'uwsgi-plugin-python3',
               'libapache2-mod-wsgi-py3'),
    # functions-libvirt's install_libvirt (Debian branch).
    'n-cpu': ('qemu-system', 'qemu-system-x86', 'libvirt-clients',
              'libvirt-daemon-system', 'libvirt-dev', 'python3-libvirt',
              'systemd-coredump', 'ovmf', 'swtpm', 'swtpm-tools', 'mdevctl',
              'qemu-system-modules-spice', 'qemu-utils'),
    # lib/neutron_plugins/ovn_agent: files/debs/openvswitch and ovn.
    'ovn': ('openvswitch-switch', 'ovn-central', 'ovn-host',
            'ovn-controller-vtep'),
    'q-svc': ('radvd', 'haproxy', 'keepalived'),
    # lib/cinder's install_cinder: the default CINDER_TARGET_HELPER, lioadm.
    'c-api': ('targetcli-fb',),
    # Not devstack's: the one-node Ceph cluster the container's volume
    # service uses (devstack_env.ceph), with the bindings Cinder's RBD
    # driver imports and qemu's rbd block driver (without it libvirt's
    # attach failed: "blockdev-add: Unknown driver 'rbd'").
    'c-vol': ('ceph-mon', 'ceph-osd', 'ceph-mgr', 'ceph-common',
              'python3-rados', 'python3-rbd', 'qemu-block-extra'),
}

# Always present in the rootfs devstack boots in: what stack.sh and this
# project's tools call before they install anything.
BASE_PACKAGES = (
    'systemd', 'systemd-sysv', 'dbus', 'sudo', 'git', 'python3',
    'python3-venv', 'python3-dev', 'python3-pip', 'build-essential',
    'iproute2', 'iputils-ping', 'ca-certificates', 'locales', 'procps',
    'lsb-release', 'curl', 'kmod', 'psmisc', 'less', 'iptables', 'passwd',
)

_BINDEP_LINE = re.compile(r'^(?P<name>[A-Za-z0-9.+_-]+)(?P<rest>.*)$')
_SELECTORS = re.compile(r'\[(?P<sel>[^\]]*)\]')
# bindep platform selectors that match Debian bookworm.
_OUR_PLATFORMS = frozenset({'dpkg', 'debian', f'debian-{DISTRO}', 'debian-12'})


def parse_package_file(text: str, distro: str = DISTRO) -> list[str]:
    """The packages a files/debs file makes install_prereqs.sh install on
    ``distro`` (NOPRIME lines are left out, as devstack does)."""
    out = []
    for line in text.splitlines():
        if 'NOPRIME' in line:
            continue
        name, _, comment = line.partition('#')
        name = name.strip()
        if not name:
            continue
        dist = re.search(r'dist:(\S*)', comment)
        if dist and distro.lower() not in dist.group(1).lower():
            continue
        never = re.search(r'not:(\S*)', comment)
        if never and distro.lower() in never.group(1).lower():
            continue
        out.append(name)
    return out


def package_files(services: Iterable[str]) -> list[str]:
    """The files/debs names devstack parses for ``general`` and the
    enabled services, in its order, without repeats."""
    names = ['general']
    for service in services:
        names.append(service)
        for prefix, shared in _SHARED_FILES:
            if service == prefix or (prefix.endswith('-')
                                     and service.startswith(prefix)) or (
                    prefix == 'key' and service.startswith('key')):
                names.extend(shared)
                break
    seen: dict[str, None] = {}
    for name in names:
        seen.setdefault(name, None)
    return list(seen)


def parse_bindep(text: str, profiles: Iterable[str] = ()) -> list[str]:
    """The Debian packages a bindep.txt asks for with ``profiles`` (none:
    the default profile), on Debian bookworm."""
    wanted = set(profiles)
    out = []
    for raw in text.splitlines():
        line = raw.split('#', 1)[0].strip()
        match = _BINDEP_LINE.match(line)
        if not match:
            continue
        selectors: list[str] = []
        for group in _SELECTORS.findall(match.group('rest')):
            selectors.extend(group.split())
        if _bindep_applies(selectors, wanted):
            out.append(match.group('name'))
    return out


def _bindep_applies(selectors: list[str], profiles: set[str]) -> bool:
    platforms = [s for s in selectors if s.lstrip('!').startswith('platform:')]
    others = [s for s in selectors if s not in platforms]
    for sel in platforms:
        value = sel.lstrip('!')[len('platform:'):]
        if sel.startswith('!') and value in _OUR_PLATFORMS:
            return False
    positive = [s.lstrip('!')[len('platform:'):] for s in platforms
                if not s.startswith('!')]
    if positive and not _OUR_PLATFORMS.intersection(positive):
        return False
    if any(s.startswith('!') and s[1:] in profiles for s in others):
        return False
    wanted_profiles = [s for s in others if not s.startswith('!')]
    return not wanted_profiles or bool(profiles.intersection(wanted_profiles))


def later_packages(services: Iterable[str]) -> list[str]:
    """LATER_PACKAGES of the enabled services (Apache for every service
    that runs under it: always, as keystone does)."""
    enabled = set(services)
    keys = ['host', 'apache']
    if 'mysql' in enabled:
        keys.append('mysql')
    if 'rabbit' in enabled:
        keys.append('rabbit')
    if 'n-cpu' in enabled:
        keys.append('n-cpu')
    if enabled & {'ovn-controller', 'ovn-northd', 'ovs-vswitchd',
                  'ovsdb-server', 'q-ovn-agent'}:
        keys.append('ovn')
    if 'q-svc' in enabled:
        keys.append('q-svc')
    if 'c-api' in enabled:
        keys.append('c-api')
    if 'c-vol' in enabled:
        keys.append('c-vol')
    return [pkg for key in keys for pkg in LATER_PACKAGES[key]]


def wanted_packages(devstack_dir: pathlib.Path | str,
                    services: Iterable[str],
                    bindep_files: Iterable[pathlib.Path | str] = ()
                    ) -> list[str]:
    """Every package stack.sh may install with ``services`` enabled:
    devstack's files, the later installs and the bindep files, sorted."""
    services = list(services)
    debs = pathlib.Path(devstack_dir) / 'files' / 'debs'
    found: set[str] = set(BASE_PACKAGES)
    for name in package_files(services):
        path = debs / name
        if path.is_file():
            found.update(parse_package_file(path.read_text()))
    # Packages install_prereqs.sh never installs but lib/* does: the
    # NOPRIME lines of the files too.
    for name in ('openvswitch', 'ovn'):
        path = debs / name
        if path.is_file():
            found.update(parse_package_file(path.read_text()))
    found.update(later_packages(services))
    for listed in bindep_files:
        bindep = pathlib.Path(listed)
        if bindep.is_file():
            found.update(parse_bindep(bindep.read_text()))
    return sorted(found)
