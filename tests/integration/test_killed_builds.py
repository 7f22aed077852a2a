"""Killed image builds leave nothing (issue 23): real diskimage-builder and
mmdebstrap builds stopped by SIGINT, SIGTERM and SIGKILL at several
phases.

After a SIGINT or SIGTERM the build tears its own work directory down
before it exits; after a SIGKILL the next build or ``trovestack clean``
does.  Either way no mount under the build's directories or
/tmp/dib_*, no loop device backed by a file there, no process of the
build and no work directory may be left, and a build that is still
running keeps every mount through a sweep.

The guest builds use the builder's caches (debootstrap tarball, apt
archives, wheelhouse) shared with tests/integration/test_image_build.py,
and write to this test's own directories; builds run one at a time (one
beside the other only while a sweep runs).  About 6 minutes on 2 cores
with warm caches, most of it the two builds killed late.
"""

import glob
import json
import os
import pathlib
import signal
import subprocess
import time

import pytest

from tests import helpers
from trovestack.common import workdirs
from trovestack.images.guest import host

pytestmark = pytest.mark.image_build

PHASE_TIMEOUT = 600
DIB_TMP = '/tmp'


def _unescape(field):
    for escaped, char in (('\\040', ' '), ('\\011', '\t'),
                          ('\\012', '\n'), ('\\134', '\\')):
        field = field.replace(escaped, char)
    return field


def _mount_table():
    """(mount point, source) of every mount of this mount namespace, read
    independently of trovestack.common.mounts."""
    table = []
    with open('/proc/self/mountinfo') as mountinfo:
        for line in mountinfo:
            fields = line.split()
            source = fields[fields.index('-', 6) + 2]
            table.append((_unescape(fields[4]), _unescape(source)))
    return table


def _mount_points():
    return [point for point, _ in _mount_table()]


def _under(path, roots):
    return any(path == str(r) or path.startswith(str(r).rstrip('/') + '/')
               for r in roots)


# DIB leftovers that were there before this module's tests (another
# tool's, in use): not this test's business.
_BASELINE = set()


def _stray_roots():
    return [pathlib.Path(p) for pattern in ('dib_build.*', 'dib_image.*')
            for p in glob.glob(os.path.join(DIB_TMP, pattern))
            if p not in _BASELINE]


def _loops():
    """(device, backing file) of every loop device, from losetup -J."""
    out = subprocess.run(['losetup', '-J'], capture_output=True, text=True,
                         check=True).stdout
    devices = json.loads(out)['loopdevices'] if out.strip() else []
    return [(d['name'], (d.get('back-file') or '').removesuffix(
        ' (deleted)')) for d in devices]


def _marked_processes(roots):
    found = []
    for proc in pathlib.Path('/proc').iterdir():
        if not proc.name.isdigit():
            continue
        try:
            env = (proc / 'environ').read_bytes().split(b'\0')
        except OSError:
            continue
        for item in env:
            key, _, value = item.decode(errors='replace').partition('=')
            if key == workdirs.MARKER_ENV and _under(value, roots):
                found.append(int(proc.name))
    return found


def leftovers(*dirs):
    """What a build left below ``dirs`` (output directories or work
    directories) and in /tmp/dib_*: mounts, loop devices, processes of the
    build, work directories."""
    roots = [*dirs, *_stray_roots()]
    work = [p for d in map(pathlib.Path, dirs)
            for p in ([d] if '.build-' in d.name else d.glob('.*build-*'))
            if p.exists()]
    registered = []
    registry = workdirs.registry_dir()
    for entry in registry.glob('*.json') if registry.is_dir() else ():
        path = json.loads(entry.read_text())['path']
        if _under(path, dirs):
            registered.append(path)
    return {
        'mounts': [p for p in _mount_points() if _under(p, roots)],
        'loops': [d for d, back in _loops() if _under(back, roots)],
        'processes': _marked_processes(roots),
        'work dirs': [str(p) for p in work] + registered,
        'dib dirs': [str(p) for p in _stray_roots()],
    }


def nothing_left(*dirs):
    return {key: value for key, value in leftovers(*dirs).items() if value}


def _default_signals():
    # A test runner started in the background ignores SIGINT; a build
    # started from a terminal does not.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


class Build:
    """A real build running in the background (stdout: its result,
    stderr: its progress lines)."""

    def __init__(self, directory, *argv):
        self.argv = argv
        self.directory = pathlib.Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.stderr = self.directory.parent / f'{self.directory.name}.err'
        self.started = time.monotonic()
        with open(self.stderr, 'w') as err:
            self.proc = subprocess.Popen(
                [str(helpers.BIN / argv[0]), *map(str, argv[1:])],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=err, preexec_fn=_default_signals)

    def progress(self):
        return self.stderr.read_text(errors='replace')

    def phases(self):
        """The DIB phases reported so far ('[  3.8s] root.d' lines)."""
        return [line.split('] ', 1)[1] for line in self.progress().splitlines()
                if line.startswith('[') and '] ' in line]

    def workdir(self):
        found = sorted(self.directory.glob('.*build-*'))
        return found[-1] if found else None

    def mounts(self):
        work = self.workdir()
        return [p for p in _mount_points() if work and _under(p, [work])]

    def wait_for(self, what, condition, timeout=PHASE_TIMEOUT):
        deadline = time.monotonic() + timeout
        while not condition():
            if self.proc.poll() is not None:
                raise AssertionError(
                    f'the build ended (exit {self.proc.returncode}) before '
                    f'{what}:\n{self.progress()[-3000:]}')
            if time.monotonic() > deadline:
                raise AssertionError(f'no {what} after {timeout} s:\n'
                                     f'{self.progress()[-3000:]}')
            time.sleep(0.3)
        return time.monotonic() - self.started

    def kill(self, signum):
        self.proc.send_signal(signum)
        return self.proc.wait(timeout=300)


def guest_build(directory, name):
    return Build(directory, 'trove-image-builder', '--datastore', 'mysql',
                 '--output', pathlib.Path(directory) / f'{name}.qcow2')


def clean_builds():
    """`trovestack clean --builds-only`: rows by path."""
    rows = helpers.run_json('trovestack', 'clean', '--builds-only')
    return {row['Name']: row for row in rows}


def in_phase(build, *phases, mounts=1):
    def reached():
        return (build.phases() and build.phases()[-1] in phases
                and len(build.mounts()) >= mounts)
    return reached


@pytest.fixture(scope='module')
def build_host():
    try:
        host.check_root()
        host.check_tools(device_mapper=host.has_device_mapper())
    except Exception as e:
        pytest.fail('%s (run tools/install-image-build-deps)' % e)
    _BASELINE.update(str(p) for p in _stray_roots())


def test_sigint_during_the_rootfs_phase(build_host, tmp_path):
    """Ctrl-C while root.d unpacks the base system into DIB's tmpfs: the
    build unmounts and removes everything itself before it exits."""
    build = guest_build(tmp_path / 'out', 'sigint')
    build.wait_for('root.d with DIB mounts', in_phase(build, 'root.d',
                                                      mounts=2))
    assert build.kill(signal.SIGINT) != 0
    assert nothing_left(tmp_path / 'out') == {}


def test_sigkill_is_cleaned_by_the_next_build_which_a_sweep_spares(
        build_host, tmp_path):
    """SIGKILL while install.d runs in the chroot (tmpfs, proc, sysfs,
    /dev, /dev/pts, the apt cache and the hooks bound in): all of it
    stays, until the next build starts; that build, live, keeps every
    mount through `trovestack clean`, which takes a dead leftover of
    diskimage-builder's own (/tmp/dib_build.*, with a bind of the host's
    /dev in it) meanwhile.  Then SIGKILL once DIB has attached the loop
    device and mounted its partition: `trovestack clean` takes all."""
    killed = guest_build(tmp_path / 'killed', 'killed')
    killed.wait_for('install.d with the chroot mounted',
                    in_phase(killed, 'install.d', mounts=7))
    assert killed.kill(signal.SIGKILL) == -signal.SIGKILL
    left = leftovers(tmp_path / 'killed')
    assert len(left['mounts']) >= 7 and left['work dirs'], left

    live = guest_build(tmp_path / 'live', 'live')
    live.wait_for('install.d of the next build',
                  in_phase(live, 'install.d', mounts=7))
    assert nothing_left(tmp_path / 'killed') == {}
    assert f'Cleaned up after a killed build: {left["work dirs"][0]}' in (
        live.progress())

    # A dead DIB's own work dir, as an older build or another tool
    # leaves it: a tmpfs with the host's /dev bound in.
    stray = pathlib.Path(subprocess.run(
        ['mktemp', '-d', f'{DIB_TMP}/dib_build.XXXXXXXX'],
        capture_output=True, text=True, check=True).stdout.strip())
    try:
        subprocess.run(['mount', '-t', 'tmpfs', 'tmpfs', stray], check=True)
        (stray / 'dev').mkdir()
        subprocess.run(['mount', '--bind', '/dev', stray / 'dev'],
                       check=True)
        live_mounts = live.mounts()
        rows = clean_builds()
        assert rows[str(stray)]['Action'] == 'deleted', rows
        assert str(live.workdir()) not in rows
        assert live.mounts() == live_mounts
        assert live.proc.poll() is None
        assert not stray.exists() and os.path.exists('/dev/null')
    finally:
        for point in (stray / 'dev', stray):
            subprocess.run(['umount', point], capture_output=True)
        if stray.exists() and not _under_mount(stray):
            stray.rmdir()

    def loop_attached():
        work = live.workdir()
        return any(_under(back, [work]) for _, back in _loops()) and any(
            _under(point, [work]) and '/loop' in source
            for point, source in _mount_table())
    seconds = live.wait_for('the loop device', loop_attached)
    assert live.kill(signal.SIGKILL) == -signal.SIGKILL
    left = leftovers(tmp_path / 'live')
    assert left['loops'] and left['mounts'], left
    rows = clean_builds()
    assert rows[left['work dirs'][0]]['Action'] == 'deleted', rows
    assert nothing_left(tmp_path / 'live') == {}, f'killed at {seconds:.0f}s'


def _under_mount(path):
    return any(_under(p, [path]) for p in _mount_points())


def test_sigterm_while_qemu_img_converts(build_host, tmp_path):
    """SIGTERM (a CI time-out) while qemu-img writes the qcow2 out of
    DIB's image tmpfs: the build stops qemu-img and DIB, unmounts and
    removes its work directory before it exits; no image is published."""
    out = tmp_path / 'out'
    build = guest_build(out, 'sigterm')
    build.wait_for('qemu-img convert',
                   lambda: 'qemu-img convert' in build.phases())
    assert build.kill(signal.SIGTERM) != 0
    assert nothing_left(out) == {}
    assert not (out / 'sigterm.qcow2').exists()


@pytest.mark.datastore_image
def test_killed_datastore_image_build(build_host, tmp_path):
    """mmdebstrap stopped while it installs the packages in its chroot
    (proc, sysfs, /dev/pts, /dev/shm mounted below the work directory):
    after SIGKILL all of it stays until `trovestack clean`; after SIGTERM
    the build leaves nothing itself.  The cached base layer is kept."""
    base_layers = pathlib.Path(os.environ['TROVESTACK_DATASTORE_IMAGE_CACHE'],
                               'base-layers')
    cached = base_layers / 'postgresql-15-rootfs.tar'
    before = cached.stat().st_mtime_ns if cached.exists() else None
    for signum in (signal.SIGKILL, signal.SIGTERM):
        out = tmp_path / f'out-{signum.name}'
        build = Build(out, 'trovestack', 'build-datastore-image',
                      'postgresql:15', '--force', '--output-dir', out)

        def mine(pid=build.proc.pid):
            return sorted(base_layers.glob(
                f'.postgresql-15-rootfs.tar.build-{pid}-*'))

        def chroot_mounted(mine=mine):
            return any(_under(p, mine()) and p.endswith('/proc')
                       for p in _mount_points())
        build.wait_for('mmdebstrap with its chroot mounted', chroot_mounted)
        (work,) = mine()
        build.kill(signum)
        if signum == signal.SIGKILL:
            left = leftovers(work)
            assert left['mounts'] and left['work dirs'], left
            rows = clean_builds()
            assert rows[str(work)]['Action'] == 'deleted', rows
        assert nothing_left(work, out) == {}
    after = cached.stat().st_mtime_ns if cached.exists() else None
    assert after == before
