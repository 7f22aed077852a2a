"""The agent step: another guest agent in a finished image, offline.

An agent-only rebuild takes a copy of the previous image (everything but
the agent is the same: its build hash without the agent identity, the
*base hash*, is equal) and replaces the ``trove`` distribution in the
image's agent virtualenv with the new agent's wheel, using the image's own
pip in a chroot (``--no-index --no-deps``: the libraries are in the image
already).  A qcow2 image is changed in place through a FUSE export of
``qemu-storage-daemon`` (no nbd module, no recompression: DIB's compressed
clusters stay as they are, only the agent's files are written), a raw one
directly; either is attached to a loop device and its root partition
mounted.

Everything (the export, the loop device, the mount point, the daemon with
the build's marker in its environment) lives below the build's work
directory, so an interrupted or killed build is torn down by
:mod:`trovestack.common.workdirs` like a diskimage-builder run.
"""

import contextlib
import logging
import os
import pathlib
import shutil
import subprocess
import time
from collections.abc import Iterator
from collections.abc import Mapping
from collections.abc import Sequence
from typing import IO

from trovestack.common import mounts
from trovestack.common import workdirs
from trovestack.images.guest import errors

LOG = logging.getLogger(__name__)

AGENT_VENV = 'opt/guest-agent-venv'
AGENT_LINK = 'usr/local/bin/trove-guestagent'
EXPORT_NAME = 'export.raw'
ROOT_NAME = 'root'
STAGING = 'tmp/trovestack-agent'
EXPORT_TIMEOUT = 30.0
DAEMON_STOP_TIMEOUT = 60.0
CHROOT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
# What the agent step needs on the host: (command, Debian package).
TOOLS = {'losetup': 'util-linux', 'partx': 'util-linux',
         'mount': 'mount', 'chroot': 'coreutils'}
QCOW2_TOOLS = {'qemu-storage-daemon': 'qemu-system-common'}


def tools(image_format: str) -> dict[str, str]:
    """The host tools the agent step needs for ``image_format``."""
    needed = dict(TOOLS)
    if image_format == 'qcow2':
        needed.update(QCOW2_TOOLS)
    return needed


def _run(argv: Sequence[str | pathlib.Path], log: IO[str],
         env: Mapping[str, str] | None = None,
         what: str | None = None) -> subprocess.CompletedProcess[str]:
    log.write('+ %s\n' % ' '.join(map(str, argv)))
    log.flush()
    result = subprocess.run([str(a) for a in argv], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True,
                            errors='replace', env=env,
                            stdin=subprocess.DEVNULL)
    log.write(result.stdout)
    log.flush()
    if result.returncode != 0 and what:
        last = (result.stdout.strip().splitlines() or ['no output'])[-1]
        raise errors.BuildError('%s failed: %s (see %s)'
                                % (what, last.strip(), log.name))
    return result


def _qsd_value(path: pathlib.Path | str) -> str:
    """A path as a qemu option value (commas doubled)."""
    return str(path).replace(',', ',,')


@contextlib.contextmanager
def _exported(image: pathlib.Path | str, workdir: pathlib.Path,
              log: IO[str]) -> Iterator[pathlib.Path]:
    """The qcow2 ``image`` as a raw file (a FUSE export below
    ``workdir``), written back when the block is left."""
    export = workdir / EXPORT_NAME
    export.touch()
    argv = ['qemu-storage-daemon',
            '--blockdev', 'driver=file,node-name=file,filename=%s'
            % _qsd_value(image),
            '--blockdev', 'driver=qcow2,node-name=disk,file=file',
            '--export', 'type=fuse,id=export,node-name=disk,'
            'mountpoint=%s,writable=on' % _qsd_value(export)]
    log.write('+ %s\n' % ' '.join(argv))
    log.flush()
    env = dict(os.environ, **workdirs.marker_env(workdir))
    daemon = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                              stdin=subprocess.DEVNULL, env=env,
                              start_new_session=True)
    try:
        deadline = time.monotonic() + EXPORT_TIMEOUT
        while not mounts.mounts_under(str(export)):
            if daemon.poll() is not None:
                raise errors.BuildError(
                    'qemu-storage-daemon could not export %s (exit %d; see '
                    '%s)' % (image, daemon.returncode, log.name))
            if time.monotonic() > deadline:
                raise errors.BuildError(
                    'qemu-storage-daemon did not export %s within %.0f s '
                    '(see %s)' % (image, EXPORT_TIMEOUT, log.name))
            time.sleep(0.05)
        yield export
    finally:
        # SIGTERM: the daemon flushes the image and removes its FUSE mount.
        if daemon.poll() is None:
            daemon.terminate()
        try:
            daemon.wait(DAEMON_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()
        if mounts.mounts_under(str(export)):
            mounts.unmount(str(export), lazy=True)
    if daemon.returncode not in (0, -15):
        raise errors.BuildError('qemu-storage-daemon ended with exit code %d '
                                'writing %s (see %s)'
                                % (daemon.returncode, image, log.name))


def _partitions(loop: str, sys_block: str = mounts.SYS_BLOCK) -> list[str]:
    """The partition devices of a loop device, in order (/dev/loopNpM)."""
    name = os.path.basename(loop)
    found = sorted(pathlib.Path(sys_block, name).glob(name + 'p*'),
                   key=lambda p: int(p.name[len(name) + 1:] or 0))
    return ['/dev/' + p.name for p in found]


@contextlib.contextmanager
def _loop(disk: pathlib.Path | str,
          log: IO[str]) -> Iterator[tuple[str, list[str]]]:
    """A loop device on ``disk`` with its partitions' device nodes."""
    loop = _run(['losetup', '-P', '--show', '-f', disk], log,
                what='losetup').stdout.strip().splitlines()[-1]
    try:
        # Without udev (containers) the nodes come from partx.
        _run(['partx', '-a', loop], log)
        parts = _partitions(loop)
        deadline = time.monotonic() + EXPORT_TIMEOUT
        while not all(os.path.exists(p) for p in parts):
            if time.monotonic() > deadline:
                raise errors.BuildError('no device nodes for the partitions '
                                        'of %s' % loop)
            time.sleep(0.05)
        yield loop, parts or [loop]
    finally:
        _run(['partx', '-d', loop], log)
        _run(['losetup', '-d', loop], log)


@contextlib.contextmanager
def _mounted_root(parts: list[str], workdir: pathlib.Path,
                  log: IO[str]) -> Iterator[pathlib.Path]:
    """The partition that holds the agent's virtualenv, mounted."""
    root = workdir / ROOT_NAME
    root.mkdir(exist_ok=True)
    for part in parts:
        if _run(['mount', part, root], log).returncode != 0:
            continue
        if (root / AGENT_VENV / 'bin' / 'python').exists():
            break
        _run(['umount', root], log, what='umount')
    else:
        raise errors.BuildError('no partition of the image holds the guest '
                                'agent virtualenv /%s' % AGENT_VENV)
    try:
        yield root
    except BaseException:
        # Interrupted or failed: the work directory's teardown finishes
        # what this cannot (a process still in the chroot).
        _run(['umount', root], log)
        raise
    _run(['umount', root], log, what='umount of the image')


def _chroot_env(workdir: pathlib.Path) -> dict[str, str]:
    env = {'PATH': CHROOT_PATH, 'HOME': '/root', 'LANG': 'C.UTF-8'}
    env.update(workdirs.marker_env(workdir))
    return env


def swap_agent(root: pathlib.Path, wheel: pathlib.Path,
               workdir: pathlib.Path, log: IO[str]) -> None:
    """In the mounted image ``root``: the trove distribution replaced by
    ``wheel``, then checked by importing the agent's entry module."""
    venv_python = '/%s/bin/python' % AGENT_VENV
    staging = root / STAGING
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        shutil.copy(wheel, staging / wheel.name)
        env = _chroot_env(workdir)
        pip: list[str | pathlib.Path] = [
            'chroot', root, venv_python, '-m', 'pip',
            '--disable-pip-version-check', '--no-input', '--no-cache-dir']
        _run(pip + ['uninstall', '--yes', 'trove'], log, env=env,
             what='removing the previous guest agent')
        _run(pip + ['install', '--no-index', '--no-deps',
                    '/%s/%s' % (STAGING, wheel.name)], log, env=env,
             what='installing the guest agent')
        _run(['chroot', root, venv_python, '-c', 'import trove.cmd.guest'],
             log, env=env, what='importing the guest agent in the image')
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    link = root / AGENT_LINK
    target = '/%s/bin/trove-guestagent' % AGENT_VENV
    if not (link.is_symlink() and os.readlink(link) == target):
        link.unlink(missing_ok=True)
        link.symlink_to(target)


def replace_agent(image: pathlib.Path | str, image_format: str,
                  wheel: pathlib.Path | str, workdir: pathlib.Path,
                  log: IO[str]) -> None:
    """Put the guest agent of ``wheel`` into the image file ``image`` (in
    ``workdir``, which must be the build's owned work directory)."""
    image = pathlib.Path(image)
    workdir = pathlib.Path(workdir)
    with contextlib.ExitStack() as stack:
        disk = image
        if image_format == 'qcow2':
            disk = stack.enter_context(_exported(image, workdir, log))
        _, parts = stack.enter_context(_loop(disk, log))
        root = stack.enter_context(_mounted_root(parts, workdir, log))
        swap_agent(root, pathlib.Path(wheel), workdir, log)
