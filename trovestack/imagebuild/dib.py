"""Run disk-image-create, reporting one progress line per build phase."""

import logging
import os
import re
import shutil
import subprocess
import sys
import time

from trovestack.imagebuild import errors

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


def disk_image_create():
    """Path of disk-image-create next to this Python, else on PATH."""
    local = os.path.join(os.path.dirname(sys.executable), 'disk-image-create')
    if os.access(local, os.X_OK):
        return local
    found = shutil.which('disk-image-create')
    if not found:
        raise errors.BuildError(
            'disk-image-create not found; install diskimage-builder from '
            'PyPI (pip install diskimage-builder)')
    return found


def dib_version():
    from importlib import metadata
    try:
        return metadata.version('diskimage-builder')
    except metadata.PackageNotFoundError:
        return 'unknown'


def phase_of(line):
    """The phase a DIB output line starts, or None."""
    match = _HOOKS.search(line)
    if match:
        return match.group('phase')
    for pattern, label in _OTHER_PHASES:
        match = pattern.search(line)
        if match:
            return label.format(*match.groups())
    return None


def run(args, env, log_path, progress):
    """Run disk-image-create ``args``; full output goes to ``log_path``."""
    cmd = [disk_image_create()] + list(args)
    LOG.debug('Running %s', cmd)
    start = time.monotonic()
    current = None
    with open(log_path, 'a') as log:
        log.write('+ %s\n' % ' '.join(cmd))
        log.flush()
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True,
                                errors='replace')
        for line in proc.stdout:
            log.write(line)
            phase = phase_of(line)
            if phase and phase != current:
                current = phase
                progress('[%6.1fs] %s' % (time.monotonic() - start, phase))
        returncode = proc.wait()
    elapsed = time.monotonic() - start
    if returncode != 0:
        raise errors.BuildError(
            'disk-image-create failed with exit code %d during %s after '
            '%.0fs; full log: %s' % (returncode, current or 'start', elapsed,
                                     log_path))
    progress('[%6.1fs] done' % elapsed)
    return elapsed
