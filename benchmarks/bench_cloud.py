#!/usr/bin/env python3
"""Cold start and warm restart of the local control plane.

Runs ``trovestack cloud up`` from scratch (fresh state: databases,
bootstrap, catalog) and again on existing state (restart only), a few times
each in one run, and prints the medians, their ratio and the goals
(cold <= 15 s, warm <= 4 s on 2 cores).

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


def _cloud(*args):
    subprocess.run([str(BIN / 'trovestack'), 'cloud', *map(str, args),
                    '-f', 'value'], check=True, stdout=subprocess.DEVNULL)


def _timed(*args):
    start = time.perf_counter()
    _cloud(*args)
    return time.perf_counter() - start


def measure(runs):
    cold, warm = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(runs):
            state = pathlib.Path(tmp) / f'cloud{i}'
            up = ('up', '--state-dir', state, '--base-port', 0,
                  '--clouds-yaml', state / 'clouds.yaml')
            cold.append(_timed(*up))
            _cloud('down', '--state-dir', state)
            warm.append(_timed(*up))
            _cloud('down', '--state-dir', state)
    return {'cold': cold, 'warm': warm}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--runs', type=int, default=3)
    args = parser.parse_args()
    results = measure(args.runs)
    medians = {k: statistics.median(v) for k, v in results.items()}
    print(f'{"start":<6} {"median s":>9} {"goal s":>7} {"goal/median":>12}'
          f'  runs')
    for kind, median in medians.items():
        runs = ' '.join(f'{t:.1f}' for t in results[kind])
        print(f'{kind:<6} {median:9.2f} {GOALS[kind]:7.1f} '
              f'{GOALS[kind] / median:12.2f}  {runs}')
    print(f'warm restart is {medians["cold"] / medians["warm"]:.1f}x faster '
          f'than a cold start')


if __name__ == '__main__':
    main()
