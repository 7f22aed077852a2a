"""A tiny guest image for proving the compute cloud (boots in seconds).

Debian's kernel and busybox-static (fetched with ``apt-get download``) in a
FAT disk that syslinux boots.  The guest loads the virtio-net modules, asks
DHCP for its address on eth0, prints ``trovestack-test-guest: <address>``
on its serial console and serves that line over HTTP on port 80, so a test
can see the address OVN's DHCP gave it from the console log and reach the
guest over TCP from inside the namespace.
"""

import dataclasses
import gzip
import io
import os
import pathlib
import shutil
import subprocess
import tempfile

from trovestack.cloud.compute import daemons
from trovestack.common import files

BANNER = 'trovestack-test-guest:'
KERNEL_PACKAGE = 'linux-image-amd64'
BUSYBOX_PACKAGE = 'busybox-static'
TOOLS = {'syslinux': 'syslinux', 'mcopy': 'mtools', 'mkfs.vfat': 'dosfstools'}
# virtio-net and what it needs, in load order (Debian builds them as modules).
MODULES = ('drivers/virtio/virtio_ring', 'drivers/virtio/virtio',
           'drivers/virtio/virtio_pci_legacy_dev',
           'drivers/virtio/virtio_pci_modern_dev', 'drivers/virtio/virtio_pci',
           'net/core/failover', 'drivers/net/net_failover',
           'drivers/net/virtio_net')
APPLETS = ('sh', 'mount', 'insmod', 'ip', 'udhcpc', 'httpd', 'sleep', 'cat',
           'echo')
DISK_KIB = 16384

INIT = f"""#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for module in {' '.join(m.rsplit('/', 1)[1] for m in MODULES)}; do
    insmod /lib/$module.ko
done
ip link set lo up
ip link set eth0 up
udhcpc -i eth0 -s /bin/dhcp-event -t 60 -T 2 -A 2 -n -q
address=$(ip -4 -o addr show dev eth0)
echo "{BANNER} $address" > /www/index.html
echo "{BANNER} $address"
httpd -p 80 -h /www
while true; do sleep 3600; done
"""
DHCP_EVENT = """#!/bin/sh
case "$1" in
bound|renew)
    ip addr flush dev "$interface"
    ip addr add "$ip/$mask" dev "$interface"
    ;;
esac
exit 0
"""
SYSLINUX_CFG = """DEFAULT guest
TIMEOUT 1
PROMPT 0
LABEL guest
  KERNEL vmlinuz
  APPEND initrd=initrd.gz console=ttyS0 quiet panic=10
"""


@dataclasses.dataclass(frozen=True)
class TestImage:
    path: pathlib.Path
    sha256: str
    built: bool


def default_path():
    return files.cache_dir() / 'compute' / 'test-guest.raw'


def build(path=None, *, force=False) -> TestImage:
    """Build the image at path (default: the cache) unless it exists."""
    path = pathlib.Path(path or default_path())
    if path.exists() and not force:
        return TestImage(path, files.file_sha256(path), False)
    missing = sorted(package for tool, package in TOOLS.items()
                     if shutil.which(tool) is None)
    if missing:
        raise daemons.ComputeError(
            f'building the test guest needs the Debian packages '
            f'{" ".join(missing)}')
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix='trovestack-guest-') as work:
        work = pathlib.Path(work)
        root = _unpack_packages(work)
        kernel = next((root / 'boot').glob('vmlinuz-*'))
        modules = next((root / 'lib' / 'modules').iterdir()) / 'kernel'
        (work / 'vmlinuz').write_bytes(kernel.read_bytes())
        (work / 'initrd.gz').write_bytes(_initramfs(root, modules))
        (work / 'syslinux.cfg').write_text(SYSLINUX_CFG)
        disk = work / 'disk.raw'
        daemons.run(['mkfs.vfat', '-C', disk, str(DISK_KIB)])
        daemons.run(['syslinux', '--install', disk])
        daemons.run(['mcopy', '-i', disk, work / 'vmlinuz',
                     work / 'initrd.gz', work / 'syslinux.cfg', '::/'])
        os.replace(disk, path)
    return TestImage(path, files.file_sha256(path), True)


def _unpack_packages(work):
    downloads = work / 'debs'
    downloads.mkdir()
    kernel = subprocess.run(
        ['apt-cache', 'depends', KERNEL_PACKAGE], capture_output=True,
        text=True, check=True).stdout
    versioned = next(line.split(':', 1)[1].strip()
                     for line in kernel.splitlines()
                     if line.strip().startswith('Depends: linux-image-'))
    result = subprocess.run(['apt-get', 'download', versioned,
                             BUSYBOX_PACKAGE], cwd=downloads,
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise daemons.ComputeError(
            f'apt-get download {versioned} {BUSYBOX_PACKAGE} failed: '
            f'{result.stderr.strip()}')
    root = work / 'root'
    for deb in downloads.glob('*.deb'):
        daemons.run(['dpkg-deb', '-x', deb, root])
    return root


def _initramfs(root, modules):
    """A gzip'd newc cpio archive with busybox, the modules and /init."""
    entries = [('dev', None, 0o40755), ('proc', None, 0o40755),
               ('sys', None, 0o40755), ('www', None, 0o40755),
               ('bin', None, 0o40755), ('lib', None, 0o40755),
               ('init', INIT.encode(), 0o100755),
               ('bin/dhcp-event', DHCP_EVENT.encode(), 0o100755),
               ('bin/busybox', (root / 'bin' / 'busybox').read_bytes(),
                0o100755)]
    entries += [(f'bin/{applet}', b'busybox', 0o120777)
                for applet in APPLETS]
    entries += [(f'lib/{module.rsplit("/", 1)[1]}.ko',
                 (modules / f'{module}.ko').read_bytes(), 0o100644)
                for module in MODULES]
    archive = io.BytesIO()
    for number, (name, data, mode) in enumerate(entries, start=1):
        _cpio_entry(archive, number, name, data or b'', mode)
    _cpio_entry(archive, 0, 'TRAILER!!!', b'', 0)
    return gzip.compress(archive.getvalue(), 9)


def _cpio_entry(out, inode, name, data, mode):
    encoded = name.encode() + b'\0'
    fields = (inode, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0,
              len(encoded), 0)
    out.write(b'070701' + b''.join(b'%08X' % field for field in fields))
    out.write(encoded)
    out.write(b'\0' * (-(110 + len(encoded)) % 4))
    out.write(data)
    out.write(b'\0' * (-len(data) % 4))
