"""Benchmark trove-image-builder on this host, side by side in one run.

Runs, with a fresh cache directory:
  1. cold build        (wheelhouse from PyPI, debootstrap from the mirror)
  2. no-change re-run  (must skip: goal < 2 s)
  3. --force rebuild   (cached debootstrap tarball + cached wheelhouse)
  4. --force rebuild with --base-image download (debootstrap again)
and prints the times and ratios. Needs root and the image build packages
(tools/install-image-build-deps); takes about 12 minutes.

Usage: .venv/bin/python benchmarks/bench_image_build.py [--datastore mysql]
       [--cache-dir DIR] [--keep]
"""

import argparse
import pathlib
import shutil
import sys
import tempfile
import time

from trovestack.imagebuild import builder


def _timed(label, request):
    start = time.monotonic()
    result = builder.build_image(request, progress=lambda m: None)
    elapsed = time.monotonic() - start
    print('%-34s %8.2f s  %s' % (label, elapsed,
                                 'skipped' if result.skipped else 'built'),
          flush=True)
    return elapsed, result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--datastore', default='mysql')
    parser.add_argument('--cache-dir', help='default: a fresh temporary dir')
    parser.add_argument('--keep', action='store_true',
                        help='keep the temporary cache and image')
    args = parser.parse_args(argv)

    cache = pathlib.Path(args.cache_dir
                         or tempfile.mkdtemp(prefix='bench-tib-'))
    try:
        def request(**kwargs):
            return builder.BuildRequest(datastore=args.datastore,
                                        cache_dir=str(cache), **kwargs)

        cold, first = _timed('cold build', request())
        rerun, second = _timed('no-change re-run', request())
        cached, _ = _timed('rebuild, cached debootstrap', request(force=True))
        download, _ = _timed('rebuild, debootstrap from mirror',
                             request(force=True, base_image='download'))
        assert second.skipped and second.build_hash == first.build_hash
        print()
        print('cold build / no-change re-run:    %8.0fx' % (cold / rerun))
        print('no-change re-run under 2 s:       %8s' % (rerun < 2))
        print('debootstrap from mirror / cached: %8.2fx'
              % (download / cached))
        print('cold build / cached rebuild:      %8.2fx' % (cold / cached))
    finally:
        if args.keep or args.cache_dir:
            print('cache kept in %s' % cache)
        else:
            shutil.rmtree(cache, ignore_errors=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
