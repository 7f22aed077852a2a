#!/usr/bin/env python3
"""The guest agent's development loop: ``instance sync-agent`` against a
new image and a new instance.

On a running compute cloud with an ACTIVE Trove instance, syncs a Trove
tree's agent into it ``--runs`` times (each run with a new marker, so each
sync changes the agent), from the command to the agent's answer to Trove's
``database list`` and on to its first heartbeat, with the split (check,
locate, pack, copy, restart, start-up, heartbeat); each run checks that the
marker is in the guest's agent journal.  Then prints it beside the other loop,
a new guest image with the changed agent and a new instance from it, when
its figures are known: the image build from ``--image``'s build record (the
builder's log name holds the start, the record the end) or
``--rebuild-seconds``, the instance's create -> ACTIVE from
``--create-seconds`` or measured with ``--measure-create`` (a new instance
of the cloud's defaults, deleted after).

    .venv/bin/python benchmarks/bench_dev_loop.py --state-dir DIR \\
        [--instance demo] [--source TREE] [--runs 3] [--image IMAGE] \\
        [--create-seconds S | --measure-create]

Without ``--source`` the tree is the pinned trove's sdist, unpacked from the
cache tools/install-test-deps fills (tests/trove_tree.py).  Root only (the
cloud's namespace).
"""

import argparse
import datetime
import json
import pathlib
import re
import statistics
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from tests import trove_tree  # noqa: E402
from trovestack.trove import agent_sync  # noqa: E402
from trovestack.trove import instances  # noqa: E402

STEPS = ('check', 'locate', 'pack', 'copy', 'restart', 'start-up',
         'heartbeat')
# The image builder's log: <image name>-<start, UTC, %Y%m%dT%H%M%S>.log
_LOG_START = re.compile(r'-(\d{8}T\d{6})\.log$')


def _progress(text):
    print(text, file=sys.stderr, flush=True)


def _sync_runs(args, tree):
    runs = []
    for run in range(args.runs):
        marker = f'bench-dev-loop-{int(time.time())}-{run}'
        trove_tree.set_agent_marker(tree, marker)
        result = agent_sync.sync_agent(
            args.instance, state_dir=args.state_dir, source=str(tree),
            timeout=args.timeout, heartbeat=True, progress=_progress)
        _, _, guest, _ = agent_sync.open_guest(args.instance,
                                               state_dir=args.state_dir)
        with guest:
            found = agent_sync.agent_logged(
                guest, trove_tree.AGENT_LOG_LINE % marker)
        if not found:
            raise SystemExit(f'run {run + 1}: marker {marker} not in the '
                             'guest\'s agent log')
        runs.append(result)
    return runs


def _image_build_seconds(image):
    """Seconds the image's last build took, from its build record."""
    record = pathlib.Path(f'{image}.build.json')
    if not record.is_file():
        return None
    built = json.loads(record.read_text())
    match = _LOG_START.search(built.get('log') or '')
    if not match or not built.get('built_at'):
        return None
    start = datetime.datetime.strptime(match.group(1), '%Y%m%dT%H%M%S')
    end = datetime.datetime.fromisoformat(built['built_at'])
    return (end.replace(tzinfo=None) - start).total_seconds()


def _measure_create(args):
    from trovestack.cloud import bootstrap
    from trovestack.cloud import controlplane

    local = controlplane.LocalCloud(args.state_dir)
    conn = bootstrap.admin_connection(local.state)
    name = 'bench-dev-loop-new'
    start = time.perf_counter()
    try:
        instances.ensure_instance(conn, name, progress=_progress)
        return time.perf_counter() - start
    finally:
        instances.delete_instance(conn, name, progress=_progress)


def _median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def _fmt(value):
    return '-' if value is None else f'{value:.1f}'


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--state-dir', required=True)
    parser.add_argument('--instance', default='demo')
    parser.add_argument('--source', help='Trove tree (default: the pinned '
                        'trove sdist, unpacked)')
    parser.add_argument('--runs', type=int, default=3)
    parser.add_argument('--timeout', type=int,
                        default=agent_sync.DEFAULT_TIMEOUT)
    parser.add_argument('--image', help='guest image whose build record '
                        'gives the rebuild time')
    parser.add_argument('--rebuild-seconds', type=float)
    parser.add_argument('--create-seconds', type=float)
    parser.add_argument('--measure-create', action='store_true')
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix='bench-dev-loop-') as tmp:
        tree = pathlib.Path(args.source) if args.source else \
            trove_tree.make_tree(tmp)
        runs = _sync_runs(args, tree)

    print(f'sync-agent into {args.instance}, {len(runs)} run(s), '
          f'{runs[0].files} files, {runs[0].bytes} bytes, byte code '
          + ('compiled here' if runs[0].compiled_here else 'on the guest'))
    print('run  ' + ' '.join(f'{step:>9}' for step in STEPS)
          + '  to answer  to heartbeat')
    for number, result in enumerate(runs, 1):
        print(f'{number:>3}  ' + ' '.join(
            f'{_fmt(result.seconds.get(step)):>9}' for step in STEPS)
            + f'  {_fmt(result.timeline.get("answered")):>9}'
            f'  {_fmt(result.timeline.get("heartbeat")):>12}')
    answer = _median([r.timeline.get('answered') for r in runs])
    heartbeat = _median([r.timeline.get('heartbeat') for r in runs])
    print('med  ' + ' '.join(
        f'{_fmt(_median([r.seconds.get(step) for r in runs])):>9}'
        for step in STEPS) + f'  {_fmt(answer):>9}  {_fmt(heartbeat):>12}')

    rebuild = args.rebuild_seconds
    if rebuild is None and args.image:
        rebuild = _image_build_seconds(args.image)
    create = args.create_seconds
    if create is None and args.measure_create:
        create = _measure_create(args)
    print()
    print(f'{"loop":<40} {"seconds":>9}')
    print(f'{"sync-agent: command to answer":<40} {_fmt(answer):>9}')
    print(f'{"sync-agent: command to first heartbeat":<40} '
          f'{_fmt(heartbeat):>9}')
    print(f'{"new image: build":<40} {_fmt(rebuild):>9}')
    print(f'{"new instance: create to ACTIVE":<40} {_fmt(create):>9}')
    if rebuild is not None and create is not None and heartbeat:
        other = rebuild + create
        print(f'{"new image + new instance":<40} {_fmt(other):>9}  '
              f'({other / heartbeat:.1f}x the sync to its heartbeat)')
    else:
        print('(the other loop\'s figures: --image or --rebuild-seconds, '
              'and --create-seconds or --measure-create)')


if __name__ == '__main__':
    main()
