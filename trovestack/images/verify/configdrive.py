"""An OpenStack config drive, as nova writes it for a Trove instance.

ISO 9660 with Rock Ridge and Joliet, volume label ``config-2``:
``openstack/latest/meta_data.json`` (uuid, hostname and the injected
``files``, whose contents sit in ``openstack/content/NNNN``),
``openstack/latest/network_data.json`` (one link, one static IPv4
network) and, when given, ``openstack/latest/user_data``.  cloud-init's
ConfigDrive datasource writes the injected files in its local stage, before
the network and before the guest agent starts.
"""

import dataclasses
import ipaddress
import json
import pathlib
import shutil
import subprocess
import tempfile

from trovestack.common import files as common_files
from trovestack.common.errors import UserError

LABEL = 'config-2'
ISO_TOOLS: tuple[tuple[str, list[str]], ...] = (
    ('genisoimage', []), ('xorriso', ['-as', 'mkisofs']))


@dataclasses.dataclass(frozen=True)
class GuestNetwork:
    """The guest's one interface: MAC, static address and the host side."""

    mac: str
    address: str          # CIDR, e.g. 10.99.0.10/24
    gateway: str          # the namespace side of the tap, e.g. 10.99.0.1

    @property
    def ip(self) -> str:
        return str(ipaddress.ip_interface(self.address).ip)

    def network_data(self) -> dict:
        """network_data.json: what nova's metadata layer writes."""
        interface = ipaddress.ip_interface(self.address)
        return {
            'links': [{'id': 'tap0', 'type': 'phy', 'mtu': 1500,
                       'ethernet_mac_address': self.mac}],
            'networks': [{'id': 'network0', 'type': 'ipv4', 'link': 'tap0',
                          'ip_address': str(interface.ip),
                          'netmask': str(interface.netmask),
                          'routes': [],
                          'network_id': 'trovestack-verify'}],
            'services': [],
        }


def _iso_tool() -> list[str]:
    for name, args in ISO_TOOLS:
        path = shutil.which(name)
        if path:
            return [path, *args]
    raise UserError('No ISO 9660 tool found; install it with: '
                    'apt-get install genisoimage')


def write(path: pathlib.Path, *, instance_id: str, hostname: str,
          injected_files: dict[str, str], network: GuestNetwork,
          user_data: str | None = None) -> pathlib.Path:
    """Write the config drive image to ``path`` and return it."""
    tool = _iso_tool()
    path = pathlib.Path(path)
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        root = pathlib.Path(tmp)
        latest = root / 'openstack' / 'latest'
        content = root / 'openstack' / 'content'
        latest.mkdir(parents=True)
        content.mkdir()
        listed = []
        for index, (target, text) in enumerate(sorted(injected_files.items())):
            name = '%04d' % index
            (content / name).write_text(text)
            listed.append({'path': target, 'content_path': '/content/' + name})
        meta = {'uuid': instance_id, 'name': hostname, 'hostname': hostname,
                'launch_index': 0, 'availability_zone': 'nova',
                'meta': {}, 'public_keys': {}, 'files': listed}
        (latest / 'meta_data.json').write_text(json.dumps(meta, indent=1))
        (latest / 'network_data.json').write_text(
            json.dumps(network.network_data(), indent=1))
        (latest / 'vendor_data.json').write_text('{}')
        if user_data is not None:
            (latest / 'user_data').write_text(user_data)
        result = subprocess.run(
            [*tool, '-o', str(path), '-V', LABEL, '-J', '-r', '-l',
             '-ldots', '-allow-lowercase', '-allow-multidot', '-quiet',
             str(root)], capture_output=True, text=True)
        if result.returncode != 0:
            raise UserError('Cannot write the config drive: %s' %
                            result.stderr.strip())
    return path


def write_files_json(path: pathlib.Path, injected: dict[str, str]) -> None:
    """Keep a copy of what was injected next to the drive (mode 0600: the
    guest agent config holds the broker password)."""
    common_files.write_atomic(path, json.dumps(injected, indent=1), 0o600)
