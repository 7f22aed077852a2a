"""Benchmark the road from nothing to an ACTIVE guest, stage by stage.

Measures, on this host:
  1. each datastore image build (build-datastore-image; --force: cold)
  2. the guest image build with those images embedded (--force: cold)
  3. verify-image boot -> ACTIVE per datastore, with every stage of the
     timeline: embedded image, and the registry path (skopeo's push)
and prints the figures side by side, one column per run (never asserted).
Needs root and the packages of tools/install-test-deps; takes 30-90
minutes under TCG.

Usage: .venv/bin/python benchmarks/bench_verify_image.py
       [--datastore mariadb:11.8 --datastore postgresql:17] [--no-force]
       [--image guest.qcow2] [--delivery embedded --delivery registry]
"""

import argparse
import pathlib
import tempfile
import time

from trovestack.images import datastore as datastore_images
from trovestack.images.guest import builder
from trovestack.images.verify import run


def _timed(label, func, *args, **kwargs):
    start = time.monotonic()
    value = func(*args, **kwargs)
    elapsed = time.monotonic() - start
    print('%-46s %8.1f s' % (label, elapsed), flush=True)
    return elapsed, value


DELIVERIES = {'embedded': {}, 'registry': {'use_registry': True}}


def _verify(image, datastore, version, delivery):
    result = run.verify_image(image, datastore, version,
                              **DELIVERIES[delivery])
    print('  %s:%s (%s, %s): %s' % (
        datastore, version, delivery, result.accelerator,
        'ACTIVE' if result.ok else 'FAILED at %s' % result.failed_stage))
    for stage in result.stages:
        at = '%7.1f s' % stage.seconds if stage.seconds is not None else (
            '      -  ')
        print('    %s  %s' % (at, stage.name))
    return result


def side_by_side(runs):
    """Every stage of every run, one column per run (seconds since qemu
    started)."""
    names = list(runs)
    print('%-24s' % 'stage' + ''.join('%22s' % n[:21] for n in names))
    for stage in run.STAGES:
        cells = [runs[n].get(stage) for n in names]
        print('%-24s' % stage + ''.join(
            '%22s' % ('%.0f s' % c if c is not None else '-')
            for c in cells))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--datastore', action='append',
                        help='datastore:version (default: mariadb:11.8 '
                             'and postgresql:17)')
    parser.add_argument('--delivery', action='append',
                        choices=sorted(DELIVERIES),
                        help='how the database image reaches the guest '
                             '(default: all three)')
    parser.add_argument('--image', help='boot this guest image instead of '
                                        'building one')
    parser.add_argument('--no-force', action='store_true',
                        help='reuse up-to-date builds (time the skip path)')
    args = parser.parse_args(argv)
    wanted = [tuple(d.split(':', 1)) for d in
              (args.datastore or ['mariadb:11.8', 'postgresql:17'])]
    force = not args.no_force

    print('== datastore images')
    ds_times = {}
    for datastore, version in wanted:
        ds_times[datastore], _ = _timed(
            'build-datastore-image %s:%s' % (datastore, version),
            datastore_images.build, datastore, version, force=force)

    build_time = None
    if args.image:
        image = pathlib.Path(args.image)
    else:
        print('== guest image, datastore images embedded')
        out = pathlib.Path(tempfile.mkdtemp(prefix='bench-verify-'))
        image = out / 'trove-guest-bench.qcow2'
        request = builder.BuildRequest(
            datastore=wanted[0][0], output=str(image), force=force,
            embed_datastore_images=tuple('%s:%s' % w for w in wanted))
        build_time, _ = _timed('trove-image-builder --embed-datastore-image',
                               builder.build_image, request,
                               progress=lambda m: None)

    print('== verify-image, boot -> ACTIVE')
    runs = {}
    for datastore, version in wanted:
        for delivery in args.delivery or DELIVERIES:
            if delivery == 'embedded' and '%s:%s' % (
                    datastore, version) not in run.embedded_images(image):
                print('  %s:%s is not embedded in %s: no embedded run' % (
                    datastore, version, image.name))
                continue
            result = _verify(image, datastore, version, delivery)
            runs['%s %s' % (datastore, delivery)] = {
                s.name: s.seconds for s in result.stages}

    print()
    side_by_side(runs)
    for datastore, seconds in ds_times.items():
        print('%-30s %10.0f s' % ('datastore image, %s' % datastore,
                                  seconds))
    if build_time is not None:
        print('%-30s %10.0f s' % ('guest image build', build_time))


if __name__ == '__main__':
    main()
