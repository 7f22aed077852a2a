"""trovestack.common.mounts against a simulated kernel: a mountinfo file
and a /sys/block tree that the stand-in umount2 and losetup change."""

import errno
import os
import pathlib

import pytest

from trovestack.common import mounts

ROOT = '/w/.build-1-x'


class FakeKernel:
    """A mount table (written to a mountinfo file after every change),
    umount2 with the kernel's rules (EBUSY with a mount below it or while
    busy, MNT_DETACH takes the subtree) and loop devices in a sysfs tree."""

    def __init__(self, tmp_path):
        self.mountinfo = tmp_path / 'mountinfo'
        self.sys_block = tmp_path / 'sys-block'
        self.sys_block.mkdir()
        self.table = []     # (id, parent id, path, fstype)
        self.busy = set()
        self.calls = []
        self.add('/', 'ext4', parent=0)

    def add(self, path, fstype='tmpfs', parent=None):
        if parent is None:
            parent = self.top(os.path.dirname(path.rstrip('/')) or '/')[0]
        mount_id = len(self.calls) + 100 + len(self.table)
        self.table.append((mount_id, parent, path, fstype))
        self.write()
        return mount_id

    def top(self, path):
        """The mount a path is on (the last one covering it)."""
        best = None
        for entry in self.table:
            if mounts.is_under(path, entry[2]):
                if best is None or len(entry[2]) >= len(best[2]):
                    best = entry
        return best

    def write(self):
        lines = [f'{i} {p} 0:1 / {path.replace(" ", chr(92) + "040")} rw '
                 f'shared:1 - {fstype} none rw'
                 for i, p, path, fstype in self.table]
        self.mountinfo.write_text('\n'.join(lines) + '\n')

    def umount2(self, path, flags):
        lazy = bool(flags & mounts.MNT_DETACH)
        self.calls.append(('umount', path, lazy))
        at = [e for e in self.table if e[2] == path]
        if not at:
            return errno.EINVAL
        entry = at[-1]
        children = [e for e in self.table if e[1] == entry[0]]
        if not lazy and (children or path in self.busy):
            return errno.EBUSY
        gone = {entry[0]}
        changed = True
        while changed:
            changed = False
            for e in self.table:
                if e[1] in gone and e[0] not in gone:
                    gone.add(e[0])
                    changed = True
        self.table = [e for e in self.table if e[0] not in gone]
        self.write()
        return 0

    def attach(self, name, backing, partitions=(), holders=()):
        block = self.sys_block / name
        (block / 'loop').mkdir(parents=True)
        (block / 'loop' / 'backing_file').write_text(backing + '\n')
        for part in partitions:
            (block / part).mkdir()
        for holder, dm_name in holders:
            (block / 'holders' / holder / 'dm').mkdir(parents=True)
            (block / 'holders' / holder / 'dm' / 'name').write_text(dm_name)

    def run(self, argv):
        self.calls.append(tuple(argv))
        if argv[:2] == ['losetup', '-d']:
            name = argv[2].rsplit('/', 1)[1]
            backing = (self.sys_block / name / 'loop' / 'backing_file')
            # The backing file's mount is no longer busy.
            self.busy.discard(os.path.dirname(backing.read_text().strip()))
            backing.unlink()

        class Done:
            returncode = 0
            stderr = ''
        return Done()


@pytest.fixture
def kernel(tmp_path, monkeypatch):
    fake = FakeKernel(tmp_path)
    monkeypatch.setattr(mounts, '_umount2', fake.umount2)
    monkeypatch.setattr(mounts, '_run', fake.run)
    monkeypatch.setattr(mounts, 'canonical', lambda path: str(path))
    return fake


def _teardown(kernel, root=ROOT, busy_wait=0.0):
    return mounts.teardown(root, mountinfo=kernel.mountinfo,
                           sys_block=kernel.sys_block, busy_wait=busy_wait)


def test_mountinfo_fields_escapes_and_deleted_mount_points():
    text = ('36 35 98:0 /mnt1 /mnt/with\\040space rw,noatime master:1 - '
            'ext3 /dev/root rw,errors=continue\n'
            '40 36 0:5 / /w/gone//deleted rw shared:2 - tmpfs tmpfs rw\n'
            'garbage\n')
    first, second = mounts.parse_mountinfo(text)
    assert (first.mount_id, first.parent_id, first.path, first.fstype,
            first.source) == (36, 35, '/mnt/with space', 'ext3', '/dev/root')
    assert second.path == '/w/gone'


def test_only_mounts_at_or_below_the_root_count(kernel):
    kernel.add('/w')
    kernel.add(ROOT)
    kernel.add(ROOT + '/tmp/dib_build.1')
    kernel.add(ROOT + 'sibling')
    found = [m.path for m in mounts.mounts_under(ROOT, kernel.mountinfo)]
    assert found == [ROOT, ROOT + '/tmp/dib_build.1']


def test_teardown_goes_deepest_first_and_leaves_the_rest(kernel):
    build = ROOT + '/tmp/dib_build.1'
    kernel.add('/dev', 'devtmpfs')
    kernel.add('/w')
    kernel.add(build)
    kernel.add(build + '/mnt', 'ext4')
    for sub in ('proc', 'sys', 'dev'):
        kernel.add(f'{build}/mnt/{sub}', 'proc')
    kernel.add(build + '/mnt/dev/pts', 'devpts')
    done = _teardown(kernel)
    assert done.remaining == []
    # Deepest first, the last mounted first among equals.
    assert done.unmounted[:2] == [build + '/mnt/dev/pts', build + '/mnt/dev']
    assert done.unmounted[-1] == build
    assert [e[2] for e in kernel.table] == ['/', '/dev', '/w']
    assert not any(lazy for _, _, lazy in kernel.calls
                   if _ == 'umount')


def test_stacked_mounts_on_one_path_all_go(kernel):
    kernel.add(ROOT, parent=1)
    kernel.add(ROOT, parent=kernel.table[-1][0])
    assert _teardown(kernel).remaining == []
    assert [e[2] for e in kernel.table] == ['/']


def test_loop_device_detached_between_its_partition_and_its_file(kernel):
    image_dir = ROOT + '/tmp/dib_image.1'
    kernel.add(image_dir)
    kernel.add(ROOT + '/tmp/dib_build.1/mnt', 'ext4')
    kernel.attach('loop0', image_dir + '/image0.raw', partitions=('loop0p1',))
    kernel.attach('loop1', '/elsewhere/other.raw')
    kernel.busy.add(image_dir)          # the loop device holds its file
    done = _teardown(kernel, busy_wait=5.0)
    assert done.detached == ['/dev/loop0']
    assert done.remaining == []
    order = [c for c in kernel.calls if c[0] in ('umount', 'losetup')]
    assert order.index(('losetup', '-d', '/dev/loop0')) < max(
        i for i, c in enumerate(order) if c == ('umount', image_dir, False))
    assert ('partx', '-d', '/dev/loop0') in kernel.calls
    assert (kernel.sys_block / 'loop1' / 'loop' / 'backing_file').exists()
    # Never lazily: it went as soon as the loop device let it go.
    assert ('umount', image_dir, True) not in kernel.calls


def test_busy_mount_goes_lazily_after_the_wait(kernel):
    kernel.add(ROOT)
    kernel.busy.add(ROOT)
    done = _teardown(kernel)
    assert done.remaining == []
    assert ('umount', ROOT, True) in kernel.calls


def test_loop_devices_parsed_from_sysfs(kernel):
    kernel.attach('loop3', '/w/x/image.raw (deleted)',
                  partitions=('loop3p1', 'loop3p2'),
                  holders=[('dm-0', 'loop3p1')])
    (loop,) = mounts.loop_devices(kernel.sys_block)
    assert loop == mounts.LoopDevice('loop3', '/w/x/image.raw',
                                     ('loop3p1', 'loop3p2'), ('loop3p1',))
    assert mounts.loops_under('/w/x', kernel.sys_block) == [loop]
    assert mounts.loops_under('/w/xy', kernel.sys_block) == []


def test_detach_removes_only_the_shims_links_to_its_partitions(
        kernel, tmp_path):
    mapper = tmp_path / 'mapper'
    mapper.mkdir()
    (mapper / 'loop3p1').symlink_to('/dev/loop3p1')
    (mapper / 'loop3p2').symlink_to('/dev/somewhere-else')
    kernel.attach('loop3', '/w/x/image.raw')
    loop = mounts.LoopDevice('loop3', '/w/x/image.raw',
                             ('loop3p1', 'loop3p2'), ('loop3p1',))
    assert mounts.detach(loop, dev_mapper=mapper)
    assert not (mapper / 'loop3p1').is_symlink()
    assert (mapper / 'loop3p2').is_symlink()
    assert kernel.calls == [('dmsetup', 'remove', '--retry', 'loop3p1'),
                            ('partx', '-d', '/dev/loop3'),
                            ('losetup', '-d', '/dev/loop3')]


def test_remove_tree_refuses_while_mounted_and_removes_after(
        tmp_path, monkeypatch):
    work = tmp_path / 'work'
    (work / 'tmp' / 'dev').mkdir(parents=True)
    (work / 'tmp' / 'dev' / 'null').write_text('host device stand-in')
    mountinfo = tmp_path / 'mountinfo'
    mountinfo.write_text(f'1 0 0:1 / {work}/tmp/dev rw - devtmpfs udev rw\n')
    with pytest.raises(mounts.StillMounted, match='still mounted'):
        mounts.remove_tree(work, mountinfo=mountinfo)
    assert (work / 'tmp' / 'dev' / 'null').exists()
    mountinfo.write_text('')
    mounts.remove_tree(work, mountinfo=mountinfo)
    assert not work.exists()


@pytest.mark.parametrize('top', ['/', '/tmp', '/tmp/'])
def test_top_level_directories_are_refused(top):
    with pytest.raises(ValueError):
        mounts.teardown(top)
    with pytest.raises(ValueError):
        mounts.remove_tree(top)


def test_real_umount2_of_a_plain_directory_is_harmless(tmp_path):
    # Not a mount point: EINVAL, nothing happens.
    assert mounts.unmount(str(tmp_path)) is False
    assert pathlib.Path(tmp_path).is_dir()
