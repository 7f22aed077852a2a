#!/usr/bin/env python3
"""Where a Trove instance's boot goes, per stage, for datastore versions
side by side.

On the running local compute cloud (``bin/quickstart mariadb:11.8
--compute``; root), creates one instance at a time of each version named,
in turns (so that a drift of the host's load falls on each alike), follows
it as ``trovestack instance up --breakdown`` does (Trove's statuses every
2 s, the serial console, nova's events, then the guest's journal over
SSH), deletes it, and prints for each stage the median seconds since the
create call per version, the median of each span between the stages all
runs saw, and the ratio of the last version's create -> ACTIVE to the
first's.  Compare two guest images by loading the second as another
version of the same datastore (``load-trove-image --datastore mariadb
--version 11.8-next --version-number 11.8 IMAGE``).  The first boot of an
image would include nova's copy of it into its image cache: the images are
cached first through nova's aggregate image cache API (an aggregate
``bench-instance-boot`` with the compute hosts).

    .venv/bin/python benchmarks/bench_instance_boot.py \\
        --versions mariadb:11.8,mariadb:11.8-next --runs 3 [--json FILE]
"""

import argparse
import json
import pathlib
import statistics
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from trovestack.cloud import bootstrap  # noqa: E402
from trovestack.cloud import controlplane  # noqa: E402
from trovestack.cloud import layout  # noqa: E402
from trovestack.common import connection  # noqa: E402
from trovestack.testenv import datastores  # noqa: E402
from trovestack.trove import boot_timeline  # noqa: E402
from trovestack.trove import instances  # noqa: E402

NAME = 'bench-boot'
AGGREGATE = 'bench-instance-boot'
CACHE_TIMEOUT = 600
INTERVAL = 2
ACTIVE = 'trove: status ACTIVE'
# Spans printed when every run saw both ends: (label, from, to).
SPANS = (
    ('Trove to nova', 'trove: create called', 'trove: nova asked to boot'),
    ('nova build', 'trove: nova asked to boot',
     'console log opened (qemu started)'),
    ('firmware, boot loader, kernel load', 'console log opened (qemu '
     'started)', 'kernel started'),
    ('kernel and initramfs', 'kernel started', 'systemd started'),
    ('systemd to cloud-init done', 'systemd started',
     'cloud-init network done'),
    # The agent's imports: after cloud-init with an image whose agent
    # starts after it, beside cloud-init with one whose agent starts early.
    ('cloud-init done to the agent logging', 'cloud-init network done',
     'agent logging'),
    ('agent start-up to prepare', 'agent logging', 'prepare started'),
    ('prepare to container start', 'prepare started',
     'database container started'),
    ('database start to healthy', 'database container started',
     'database healthy'),
    ('healthy to prepare done', 'database healthy', 'prepare finished'),
    ('prepare done to ACTIVE', 'prepare finished', ACTIVE),
    ('create to ACTIVE', 'trove: create called', ACTIVE),
)


def _progress(text):
    print(text, file=sys.stderr, flush=True)


def boot_once(conn, access, datastore, version, name):
    """One instance of ``datastore:version`` from create to ACTIVE, its
    :class:`boot_timeline.Breakdown`; deleted again."""
    tracker = instances.Tracker(conn, name, progress=_progress,
                                interval=INTERVAL)
    _, breakdown = boot_timeline.ensure_with_breakdown(
        conn, name, tracker=tracker, access=access, datastore=datastore,
        version=version, flavor='d3', volume_size=1)
    instances.delete_instance(conn, name, progress=_progress)
    return breakdown


def warm_image_cache(conn, access, versions):
    """Have nova cache the versions' Glance images on its hosts now, and
    wait until no copy is in progress in its instances path."""
    trove = connection.trove_client(conn)
    images = sorted({trove.datastore_versions.get(d, v).image
                     for d, v in versions})
    aggregate = conn.compute.find_aggregate(AGGREGATE) or \
        conn.compute.create_aggregate(name=AGGREGATE)
    for service in conn.compute.services(binary='nova-compute'):
        if service.host not in (aggregate.hosts or ()):
            aggregate = conn.compute.add_host_to_aggregate(aggregate,
                                                           service.host)
    conn.compute.aggregate_precache_images(aggregate, images)
    base = access.where.instances_dir / '_base'
    deadline = time.monotonic() + CACHE_TIMEOUT
    time.sleep(5)
    while any(path.suffix in ('.part', '.converted')
              for path in base.glob('*')):
        if time.monotonic() > deadline:
            sys.exit(f'nova did not cache {images} in {CACHE_TIMEOUT} s')
        time.sleep(2)


def _median(values):
    return round(statistics.median(values), 1) if values else None


def report(results):
    """Lines: each stage's median per version, the spans, the ratio."""
    versions = list(results)
    stages = []
    for runs in results.values():
        for breakdown in runs:
            for row in breakdown.rows():
                if row['stage'] not in stages:
                    stages.append(row['stage'])

    def medians(stage):
        return [_median([b.at(stage) for b in results[v]
                         if b.at(stage) is not None]) for v in versions]

    stages.sort(key=lambda stage: min(
        (m for m in medians(stage) if m is not None), default=0))
    width = max(len(stage) for stage in stages)
    head = f'{"stage (median s since create)":<{width}}  ' + '  '.join(
        f'{v:>14}' for v in versions)
    lines = [head, '-' * len(head)]
    for stage in stages:
        lines.append(f'{stage:<{width}}  ' + '  '.join(
            f'{m if m is not None else "-":>14}' for m in medians(stage)))
    lines += ['', f'{"span (median s)":<{width}}  ' + '  '.join(
        f'{v:>14}' for v in versions)]
    for label, start, end in SPANS:
        spans = [_median([b.at(end) - b.at(start) for b in results[v]
                          if b.at(end) is not None
                          and b.at(start) is not None]) for v in versions]
        lines.append(f'{label:<{width}}  ' + '  '.join(
            f'{s if s is not None else "-":>14}' for s in spans))
    totals = [_median([b.at(ACTIVE) for b in results[v]
                       if b.at(ACTIVE) is not None]) for v in versions]
    if len(versions) > 1 and totals[0] and totals[-1]:
        lines.append(f'\ncreate -> ACTIVE, {versions[-1]} / {versions[0]}: '
                     f'{totals[-1] / totals[0]:.2f}x')
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--versions', default='mariadb:11.8',
                        help='Comma-separated datastore:version list '
                             '(default: mariadb:11.8)')
    parser.add_argument('--runs', type=int, default=3)
    parser.add_argument('--state-dir', default=None)
    parser.add_argument('--json', metavar='FILE',
                        help='Also write every breakdown here')
    args = parser.parse_args()
    state_dir = args.state_dir or layout.default_state_dir()
    local = controlplane.LocalCloud(state_dir)
    access = boot_timeline.ComputeAccess.of(state_dir)
    if local.state is None or access is None:
        sys.exit(f'no compute cloud in {state_dir}: bin/quickstart '
                 'mariadb:11.8 --compute')
    conn = bootstrap.admin_connection(local.state)
    versions = [datastores.parse_datastore_arg(text)
                for text in args.versions.split(',')]
    labels = [f'{d}:{v}' for d, v in versions]
    warm_image_cache(conn, access, versions)
    results = {label: [] for label in labels}
    for run in range(args.runs):
        for label, (datastore, version) in zip(labels, versions,
                                               strict=True):
            breakdown = boot_once(conn, access, datastore, version,
                                  f'{NAME}-{run}')
            _progress(f'{label} run {run + 1}:\n{breakdown.text()}')
            results[label].append(breakdown)
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(
            {label: [b.as_dict() for b in runs]
             for label, runs in results.items()}, indent=2))
    print('\n'.join(report(results)))


if __name__ == '__main__':
    main()
