#!/usr/bin/env python3
"""Cold start and warm restart of the local control plane.

Runs ``trovestack cloud up`` from scratch (fresh state: databases,
bootstrap, catalog) and again on existing state (restart only), a few times
each in one run, and prints the medians, their ratio and the goals
(cold <= 15 s, warm <= 4 s on 2 cores), beside the medians of the control
plane before it had RabbitMQ, trove-taskmanager and trove-conductor (four
API services on ``fake:/`` messaging, same machine kind).  Also times
``cloud down``.

    .venv/bin/python benchmarks/bench_cloud.py [--runs 3]
"""

import argparse
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

BIN = pathlib.Path(sys.executable).parent
GOALS = {'cold': 15.0, 'warm': 4.0}
# Medians of the four API services on fake:/ messaging (README, 870dc82).
BEFORE = {'cold': 11.7, 'warm': 3.85}


COMMAND = [str(BIN / 'trovestack')]


def _cloud(*args):
    subprocess.run([*COMMAND, 'cloud', *map(str, args), '-f', 'value'],
                   check=True, stdout=subprocess.DEVNULL)


def _timed(*args):
    start = time.perf_counter()
    _cloud(*args)
    return time.perf_counter() - start


def measure(runs):
    cold, warm, down = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(runs):
            state = pathlib.Path(tmp) / f'cloud{i}'
            up = ('up', '--state-dir', state, '--base-port', 0,
                  '--clouds-yaml', state / 'clouds.yaml')
            try:
                cold.append(_timed(*up))
                down.append(_timed('down', '--state-dir', state))
                warm.append(_timed(*up))
            finally:
                _cloud('down', '--state-dir', state)
    return {'cold': cold, 'warm': warm, 'down': down}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--runs', type=int, default=3)
    parser.add_argument(
        '--command', default=None,
        help='trovestack command to time (default: the venv\'s), e.g. a '
             'wrapper running an older checkout, to compare on one machine')
    args = parser.parse_args()
    if args.command:
        COMMAND[:] = args.command.split()
    results = measure(args.runs)
    medians = {k: statistics.median(v) for k, v in results.items()}
    print(f'{"":<6} {"median s":>9} {"before s":>9} {"now/before":>11} '
          f'{"goal s":>7} {"goal/median":>12}  runs')
    for kind, median in medians.items():
        runs = ' '.join(f'{t:.1f}' for t in results[kind])
        if kind in BEFORE:
            print(f'{kind:<6} {median:9.2f} {BEFORE[kind]:9.2f} '
                  f'{median / BEFORE[kind]:11.2f} {GOALS[kind]:7.1f} '
                  f'{GOALS[kind] / median:12.2f}  {runs}')
        else:
            print(f'{kind:<6} {median:9.2f} {"":>9} {"":>11} {"":>7} '
                  f'{"":>12}  {runs}')
    print(f'warm restart is {medians["cold"] / medians["warm"]:.1f}x faster '
          f'than a cold start')


if __name__ == '__main__':
    main()
