#!/usr/bin/env python3
"""Convergence under concurrency and crashes: runs, kills, leftovers.

Against a local cloud (started in a temporary directory, or the one given
with --state-dir), in one run:

1. rounds of N concurrent ``load-trove-image`` runs on one new file;
2. for each crash point (hashing, record created, mid-upload, uploaded,
   before registration): a run killed there with SIGKILL, then a re-run;
3. consecutive ``trovestack provision`` runs with a small image file.

After every step the end state is checked (tests.reliability_support
.leftovers: one active image per content, nothing queued/saving, one
datastore version per name pointing at it; for provision also the flavor
set).  The figures: runs, kills, concurrent runs, leftovers found (goal: 0).

    .venv/bin/python benchmarks/bench_reliability.py [--rounds 3]
        [--concurrency 3] [--kills 1] [--provision-runs 20] [--state-dir DIR]
"""

import argparse
import hashlib
import os
import pathlib
import signal
import subprocess
import sys
import tempfile
import time
import uuid

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import bench_load_image as common  # noqa: E402

from tests import crashpoints  # noqa: E402
from tests import reliability_support as rel  # noqa: E402

MiB = 1024 * 1024


class Tally:
    def __init__(self):
        self.runs = self.kills = self.concurrent = self.failed = 0
        self.leftovers = []
        self.seconds = {}

    def check(self, label, problems):
        self.leftovers += [f'{label}: {problem}' for problem in problems]


def _sha256(path):
    return hashlib.sha256(pathlib.Path(path).read_bytes()).hexdigest()


def _new_image(path, size_mib):
    common.write_image(path, size_mib * MiB)
    return path


def _name(datastore):
    return f'trove-guest-debian-bookworm-{datastore}-1.0'


def concurrency(tally, conn, trove, env, tmp, rounds, runs, size_mib):
    for round_ in range(rounds):
        datastore = f'rel-{uuid.uuid4().hex[:6]}'
        image = _new_image(tmp / f'c{round_}.img', size_mib)
        argv = rel.load_argv(image, datastore, '1.0', common.ADMIN)
        start = time.perf_counter()
        results = rel.concurrent_loads(argv, env, runs)
        tally.seconds.setdefault('concurrent round', []).append(
            time.perf_counter() - start)
        tally.runs += runs
        tally.concurrent += runs
        tally.failed += sum(1 for code, _, _ in results if code != 0)
        tally.check(f'concurrent round {round_ + 1}', rel.leftovers(
            conn, trove, name=_name(datastore), sha256=_sha256(image),
            datastore=datastore, versions=['1.0']))


def kills(tally, conn, trove, env, tmp, per_point, size_mib):
    for point in crashpoints.POINTS:
        for attempt in range(per_point):
            datastore = f'rel-{uuid.uuid4().hex[:6]}'
            image = _new_image(tmp / f'k-{point}-{attempt}.img', size_mib)
            argv = rel.load_argv(image, datastore, '1.0', common.ADMIN)
            code, _, _ = rel.finish(rel.start_load(argv, env, point))
            tally.runs += 1
            if code == -signal.SIGKILL:
                tally.kills += 1
            start = time.perf_counter()
            code, _, _ = rel.finish(rel.start_load(argv, env))
            tally.seconds.setdefault('re-run after a kill', []).append(
                time.perf_counter() - start)
            tally.runs += 1
            tally.failed += code != 0
            tally.check(f'killed at {point}', rel.leftovers(
                conn, trove, name=_name(datastore), sha256=_sha256(image),
                datastore=datastore, versions=['1.0']))


def provisions(tally, conn, trove, env, tmp, runs):
    image = tmp / 'trove-guest-bench-reliability.qcow2'
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', str(image),
                    '32M'], check=True)
    argv = [str(common.BIN / 'trovestack'), 'provision', 'mysql:8.4b',
            'mariadb:10.11b', '--image', str(image), '--os-cloud',
            common.ADMIN, *rel.API_TIMEOUT, '--tempest-conf',
            str(tmp / 'tempest.conf'), '-f', 'json']
    flavors = None
    for run in range(runs):
        start = time.perf_counter()
        code = subprocess.run(argv, env=env, capture_output=True).returncode
        tally.seconds.setdefault('provision', []).append(
            time.perf_counter() - start)
        tally.runs += 1
        tally.failed += code != 0
        for datastore, version in (('mysql', '8.4b'), ('mariadb', '10.11b')):
            tally.check(f'provision run {run + 1}', rel.leftovers(
                conn, trove, name='trove-guest-bench-reliability',
                sha256=_sha256(image), datastore=datastore,
                versions=[version]))
        current = rel.flavor_set(conn)
        if flavors is None:
            flavors = current
        elif current != flavors:
            tally.leftovers.append(f'provision run {run + 1}: flavors '
                                   'changed')


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--rounds', type=int, default=3,
                        help='Rounds of concurrent loads (default: 3)')
    parser.add_argument('--concurrency', type=int, default=3,
                        help='Loads started at once per round (default: 3)')
    parser.add_argument('--kills', type=int, default=1,
                        help='Killed runs per crash point (default: 1)')
    parser.add_argument('--provision-runs', type=int, default=20,
                        help='Consecutive provision runs (default: 20)')
    parser.add_argument('--size-mib', type=int, default=32,
                        help='Size of the test images (default: 32)')
    parser.add_argument('--state-dir',
                        help='Use this running local cloud (default: start '
                             'one in a temporary directory)')
    args = parser.parse_args()
    from trovestack.common import connection

    tally = Tally()
    with tempfile.TemporaryDirectory() as tmp, \
            common.local_cloud(args.state_dir) as (clouds_yaml, _):
        tmp = pathlib.Path(tmp)
        env = dict(os.environ, OS_CLIENT_CONFIG_FILE=str(clouds_yaml),
                   XDG_CACHE_HOME=str(tmp / 'cache'))
        env.pop('OS_CLOUD', None)
        os.environ['OS_CLIENT_CONFIG_FILE'] = str(clouds_yaml)
        conn = connection.connect(common.ADMIN)
        trove = connection.trove_client(conn)
        concurrency(tally, conn, trove, env, tmp, args.rounds,
                    args.concurrency, args.size_mib)
        kills(tally, conn, trove, env, tmp, args.kills, args.size_mib)
        provisions(tally, conn, trove, env, tmp, args.provision_runs)
    report(tally, args)
    return 1 if tally.leftovers or tally.failed else 0


def report(tally, args):
    print(f'runs {tally.runs}, kills {tally.kills} (SIGKILL at '
          f'{len(crashpoints.POINTS)} points), concurrent runs '
          f'{tally.concurrent} ({args.rounds} rounds of {args.concurrency}), '
          f'provision runs {args.provision_runs}')
    print(f'failed runs: {tally.failed}')
    print(f'leftovers found: {len(tally.leftovers)} (goal: 0)')
    for line in tally.leftovers:
        print(f'  {line}')
    for label, values in tally.seconds.items():
        print(f'{label}: median {sorted(values)[len(values) // 2]:.2f} s '
              f'over {len(values)}')


if __name__ == '__main__':
    sys.exit(main())
