"""Benchmark trovestack build-datastore-image on this host, side by side.

For each image, with a fresh cache directory:
  1. cold build               (mmdebstrap from the mirror + archive)
  2. no-change re-run         (must skip)
  3. entrypoint-only change   (cached base layer, new top layer + archive)
and prints the times, archive sizes and ratios. Needs root and
mmdebstrap (tools/install-test-deps); a cold build takes 1.5-6 minutes per
image depending on the host's load.

With --backup, the backup images instead (build-datastore-image --backup):
the cold build includes downloading the wheels, and step 3 changes
Trove's backup/ code (a copy of the release's, as a Trove tree).

Usage: .venv/bin/python benchmarks/bench_datastore_images.py
       [--image mariadb:11.8 ...] [--backup] [--cache-dir DIR] [--keep]
"""

import argparse
import os
import pathlib
import shutil
import sys
import tempfile
import time

from trovestack.cloud import trove_source
from trovestack.images.datastore import backup
from trovestack.images.datastore import builder
from trovestack.images.datastore import datastores


def _timed(label, name, build=builder.build, **kwargs):
    datastore, version = name.split(':')
    start = time.monotonic()
    image = build(datastore, version, progress=lambda m: None, **kwargs)
    elapsed = time.monotonic() - start
    print(f'{name:15} {label:24} {elapsed:8.2f} s  '
          f'{"built" if image.built else "skipped"}', flush=True)
    return elapsed, image


def _changed_scripts(workdir):
    """A copy of the image scripts with every entrypoint touched."""
    scripts = workdir / 'data'
    shutil.copytree(builder.DATA_DIR, scripts, dirs_exist_ok=True)
    for entrypoint in scripts.glob('*/entrypoint.sh'):
        with open(entrypoint, 'a') as f:
            f.write(f'# benchmark {time.time()}\n')
    return scripts


def _backup_row(name, cache):
    """Cold build, re-run and a backup/ code change of a backup image, its
    code from a copy of the release's backup/ tree."""
    tree = cache / 'trove'
    if not tree.exists():
        release = trove_source.release()
        shutil.copytree(backup.backup_tree(release), tree / 'backup')
    source = trove_source.TroveSource(version='bench', path=str(tree))
    build = backup.build_backup
    cold, first = _timed('cold build', name, build, source=source)
    rerun, second = _timed('no-change re-run', name, build, source=source)
    assert not second.built and second.sha256 == first.sha256
    with open(tree / 'backup' / 'main.py', 'a') as main_py:
        main_py.write(f'# benchmark {time.time()}\n')
    code, third = _timed('backup/ code changed', name, build, source=source)
    assert third.built and third.sha256 != first.sha256
    return name, cold, rerun, code, first.size


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--image', action='append',
                        choices=datastores.supported(),
                        help='image to build (repeatable; default: all)')
    parser.add_argument('--backup', action='store_true',
                        help='the backup images of those datastores')
    parser.add_argument('--cache-dir', help='default: a fresh temporary dir')
    parser.add_argument('--keep', action='store_true',
                        help='keep the temporary cache and archives')
    args = parser.parse_args(argv)
    names = args.image or datastores.supported()

    cache = pathlib.Path(args.cache_dir
                         or tempfile.mkdtemp(prefix='bench-dsi-'))
    os.environ['TROVESTACK_DATASTORE_IMAGE_CACHE'] = str(cache)
    rows = []
    try:
        for name in names:
            if args.backup:
                rows.append(_backup_row(name, cache))
                continue
            cold, first = _timed('cold build', name)
            rerun, second = _timed('no-change re-run', name)
            assert not second.built and second.sha256 == first.sha256
            original = builder.DATA_DIR
            builder.DATA_DIR = _changed_scripts(cache)
            try:
                scripts, third = _timed('entrypoint changed', name)
            finally:
                builder.DATA_DIR = original
            assert third.built and third.sha256 != first.sha256
            rows.append((name, cold, rerun, scripts, first.size))
        print()
        print(f'{"image":15} {"cold s":>8} {"re-run s":>9} {"scripts s":>9} '
              f'{"cold/re-run":>12} {"cold/scripts":>12} {"MiB":>6}')
        for name, cold, rerun, scripts, size in rows:
            print(f'{name:15} {cold:8.1f} {rerun:9.3f} {scripts:9.1f} '
                  f'{cold / rerun:11.0f}x {cold / scripts:11.1f}x '
                  f'{size / 2**20:6.0f}')
    finally:
        if args.keep or args.cache_dir:
            print(f'cache kept in {cache}')
        else:
            shutil.rmtree(cache, ignore_errors=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
