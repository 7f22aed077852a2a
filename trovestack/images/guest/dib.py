"""Run disk-image-create, reporting one progress line per build phase;
find diskimage-builder's own leftovers in /tmp."""

import contextlib
import glob
import logging
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence

import psutil

from trovestack.images.guest import errors

LOG = logging.getLogger(__name__)

# Host phases log "Running hooks from /tmp/dib_build.X/hooks/root.d", chroot
# phases "dib-run-parts Running /tmp/in_target.d/install.d/...".
_HOOKS = re.compile(r'(?:Running hooks from|dib-run-parts Running|'
                    r'dib-run-parts Sourcing environment file) '
                    r'\S*?/(?P<phase>[a-z-]+\.d)(?:/|\s|$)')
_OTHER_PHASES = (
    (re.compile(r'dib-block-device.*--phase[= ](?P<phase>\w+)'),
     'block-device {}'),
    (re.compile(r'Converting image using qemu-img convert'),
     'qemu-img convert'),
    (re.compile(r'Image file \S+ created'), 'image created'),
)


# diskimage-builder's work directories when TMP_DIR is not set (the
# builder sets it to its own work directory; other tools may not).
STRAY_PATTERNS = ('dib_build.*', 'dib_image.*')
STRAY_DIR = '/tmp'


def disk_image_create() -> str:
    """Path of disk-image-create next to this Python, else on PATH."""
    local = os.path.join(os.path.dirname(sys.executable), 'disk-image-create')
    if os.access(local, os.X_OK):
        return local
    found = shutil.which('disk-image-create')
    if not found:
        raise errors.BuildError(
            'disk-image-create not found: diskimage-builder is the '
            'image-builder extra, install it with pip install '
            "'trovestack[image-builder]' (tools/ensure-venv does)")
    return found


def dib_version() -> str:
    from importlib import metadata
    try:
        return metadata.version('diskimage-builder')
    except metadata.PackageNotFoundError:
        return 'unknown'


def phase_of(line: str) -> str | None:
    """The phase a DIB output line starts, or None."""
    match = _HOOKS.search(line)
    if match:
        return match.group('phase')
    for pattern, label in _OTHER_PHASES:
        match = pattern.search(line)
        if match:
            return label.format(*match.groups())
    return None


def run(args: Sequence[str], env: Mapping[str, str],
        log_path: pathlib.Path | str,
        progress: Callable[[str], None]) -> float:
    """Run disk-image-create ``args``; full output goes to ``log_path``."""
    cmd = [disk_image_create()] + list(args)
    LOG.debug('Running %s', cmd)
    start = time.monotonic()
    current = None
    with open(log_path, 'a') as log:
        log.write('+ %s\n' % ' '.join(cmd))
        log.flush()
        # A session of its own: Ctrl-C reaches this process only, which
        # stops the whole build (below) before its work dir is torn down.
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True,
                                errors='replace', start_new_session=True)
        try:
            for line in proc.stdout:  # type: ignore[union-attr]  # a PIPE
                log.write(line)
                phase = phase_of(line)
                if phase and phase != current:
                    current = phase
                    progress('[%6.1fs] %s' % (time.monotonic() - start,
                                              phase))
            returncode = proc.wait()
        except BaseException:
            with contextlib.suppress(OSError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            log.write('+ stopped during %s\n' % (current or 'start'))
            raise
    elapsed = time.monotonic() - start
    if returncode != 0:
        raise errors.BuildError(
            'disk-image-create failed with exit code %d during %s after '
            '%.0fs; full log: %s' % (returncode, current or 'start', elapsed,
                                     log_path))
    progress('[%6.1fs] done' % elapsed)
    return elapsed


def _tmp_dir_of(process: psutil.Process) -> str | None:
    """The TMP_DIR a disk-image-create process works in (None: not one)."""
    try:
        cmdline = process.cmdline()
        if not any(os.path.basename(arg) == 'disk-image-create'
                   for arg in cmdline[:3]):
            return None
        tmp = process.environ().get('TMP_DIR') or STRAY_DIR
    except (OSError, psutil.Error):
        return None
    return os.path.realpath(tmp)


def stray_dirs(tmp: str | None = None) -> list[str]:
    """diskimage-builder's work directories in ``tmp`` (dib_build.*,
    dib_image.*, made by a run without TMP_DIR) whose creator is gone:
    none at all while a disk-image-create working in ``tmp`` runs, since
    nothing tells which of them is its."""
    tmp = tmp or STRAY_DIR
    found = [path for pattern in STRAY_PATTERNS
             for path in sorted(glob.glob(os.path.join(tmp, pattern)))
             if os.path.isdir(path) and not os.path.islink(path)]
    if not found:
        return []
    tmp = os.path.realpath(tmp)
    for process in psutil.process_iter():
        if _tmp_dir_of(process) == tmp:
            LOG.info('Leaving %s: disk-image-create %d works there',
                     ', '.join(found), process.pid)
            return []
    return found
