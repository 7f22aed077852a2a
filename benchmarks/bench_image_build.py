"""Benchmark trove-image-builder on this host, side by side in one run.

Runs, with a fresh cache directory, for an image whose guest agent comes
from a Trove source tree (default: the trove sdist the venv pins, unpacked
from tools/install-test-deps' cache, as the tests do):
  1. cold build           (wheelhouse, debootstrap from the mirror, DIB)
  2. agent-only rebuild   (only the agent changed: a marker in
                           trove/cmd/guest.py; goal <= 60 s)
  3. no-change re-run     (must skip: goal < 2 s)
and, with --all,
  4. --force rebuild      (cached debootstrap tarball + cached wheels)
  5. --force rebuild with --base-image download (debootstrap again)
and prints the times and ratios.  Needs root and the image build packages
(tools/install-image-build-deps); about 6 minutes (12 with --all).

Usage: .venv/bin/python benchmarks/bench_image_build.py [--datastore mysql]
       [--tree DIR] [--cache-dir DIR] [--keep] [--all]
"""

import argparse
import pathlib
import shutil
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from tests import trove_tree  # noqa: E402
from trovestack.images.guest import builder  # noqa: E402


def _timed(label, request):
    start = time.monotonic()
    result = builder.build_image(request, progress=lambda m: None)
    elapsed = time.monotonic() - start
    print('%-34s %8.2f s  %s' % (label, elapsed, result.build_path),
          flush=True)
    return elapsed, result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--datastore', default='mysql')
    parser.add_argument('--tree', help='Trove source tree whose agent to '
                        'build (its trove/cmd/guest.py gets a marker); '
                        'default: the pinned sdist, unpacked')
    parser.add_argument('--cache-dir', help='default: a fresh temporary dir')
    parser.add_argument('--keep', action='store_true',
                        help='keep the temporary cache and image')
    parser.add_argument('--all', action='store_true',
                        help='also the forced rebuilds (cached debootstrap, '
                             'debootstrap from the mirror)')
    args = parser.parse_args(argv)

    cache = pathlib.Path(args.cache_dir
                         or tempfile.mkdtemp(prefix='bench-tib-'))
    tree = pathlib.Path(args.tree) if args.tree else trove_tree.make_tree(
        cache / 'tree')
    try:
        def request(**kwargs):
            return builder.BuildRequest(
                datastore=args.datastore, cache_dir=str(cache),
                output=str(cache / 'images' / 'bench-agent.qcow2'),
                agent_source='local', agent_path=str(tree), **kwargs)

        trove_tree.set_agent_marker(tree, 'bench-cold-%d' % time.time())
        cold, first = _timed('cold build', request())
        trove_tree.set_agent_marker(tree, 'bench-agent-%d' % time.time())
        agent, second = _timed('agent-only rebuild', request())
        rerun, third = _timed('no-change re-run', request())
        assert second.build_path == builder.AGENT_ONLY, second
        assert third.skipped and third.build_hash == second.build_hash
        print()
        print('cold build / agent-only rebuild:  %8.1fx' % (cold / agent))
        print('agent-only rebuild under 60 s:    %8s' % (agent <= 60))
        print('cold build / no-change re-run:    %8.0fx' % (cold / rerun))
        print('no-change re-run under 2 s:       %8s' % (rerun < 2))
        if args.all:
            cached, _ = _timed('rebuild, cached debootstrap',
                               request(force=True))
            download, _ = _timed('rebuild, debootstrap from mirror',
                                 request(force=True, base_image='download'))
            print('debootstrap from mirror / cached: %8.2fx'
                  % (download / cached))
            print('cold build / cached rebuild:      %8.2fx'
                  % (cold / cached))
    finally:
        if args.keep or args.cache_dir:
            print('cache kept in %s' % cache)
        else:
            shutil.rmtree(cache, ignore_errors=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
