"""Run a console script that kills (or stops) itself at a named point.

    python -m tests.crashpoints POINT ACTION SCRIPT [ARG...]

ACTION is ``kill`` (SIGKILL: no cleanup code runs, as when a machine or an
OOM killer stops a run) or ``stop`` (SIGSTOP: the run is frozen until it
gets SIGCONT, like a slow upload that is still alive).  POINT is one of:

* ``hashing``     - half-way through hashing the image file;
* ``created``     - right after the Glance image record was created;
* ``uploading``   - half-way through sending the image data;
* ``uploaded``    - the image is active, nothing deduplicated or registered;
* ``registering`` - just before the datastore version is registered.

The reliability tests and benchmarks/bench_reliability.py use it to put a
real process into each state a crash can leave behind.
"""

import importlib.metadata
import os
import signal
import sys

POINTS = ('hashing', 'created', 'uploading', 'uploaded', 'registering')
SIGNALS = {'kill': signal.SIGKILL, 'stop': signal.SIGSTOP}


def arm(point, action):
    """Patch the library so that reaching ``point`` sends the signal."""
    from load_image import datastores
    from load_image import images

    fired = []

    def fire():
        if not fired:  # once: a stopped run goes on after SIGCONT
            fired.append(point)
            os.kill(os.getpid(), SIGNALS[action])

    if point == 'hashing':
        real_hash = images.hash_file

        def hash_file(path, progress=None):
            half = os.path.getsize(path) // 2

            def watch(done):
                if done >= half:
                    fire()
                if progress:
                    progress(done)
            return real_hash(path, watch)
        images.hash_file = hash_file
    elif point == 'created':
        _before(images._Convergence, 'claim', fire)
    elif point == 'uploading':
        real_iter = images._CountingReader.__iter__

        def iterate(reader):
            for chunk in real_iter(reader):
                yield chunk
                if reader.sent >= reader._size // 2:
                    fire()
        images._CountingReader.__iter__ = iterate
    elif point == 'uploaded':
        _before(images._Convergence, 'settle', fire)
    elif point == 'registering':
        _before(datastores, 'register_version', fire)
    else:
        raise SystemExit(f'unknown point {point!r}; points: {POINTS}')


def _before(owner, name, fire):
    real = getattr(owner, name)

    def wrapper(*args, **kwargs):
        fire()
        return real(*args, **kwargs)
    setattr(owner, name, wrapper)


def main(argv):
    point, action, script, *args = argv
    arm(point, action)
    (entry,) = importlib.metadata.entry_points(group='console_scripts',
                                               name=script)
    sys.argv = [script, *args]
    return entry.load()()


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
