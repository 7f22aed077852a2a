#!/usr/bin/env python3
"""Cold start and warm restart of the local control plane.

Runs ``trovestack cloud up`` from scratch (fresh state: databases,
bootstrap, catalog) and again on existing state (restart only), a few times
each in one run, and prints the medians and the goals (cold <= 15 s, warm
<= 5 s on 2 cores).  With ``--old-tree DIR`` another checkout (a git
worktree of an earlier commit) takes turns with this one and the ratios
are printed side by side; without it, beside the medians of the control
plane before it had RabbitMQ, trove-taskmanager and trove-conductor.  Also
times ``cloud down``.

    .venv/bin/python benchmarks/bench_cloud.py [--runs 3] [--old-tree DIR]
"""

import argparse
import collections
import pathlib
import resource
import statistics
import subprocess
import sys
import tempfile
import time

import psutil

from trovestack.cloud import supervision

BIN = pathlib.Path(sys.executable).parent
GOALS = {'cold': 15.0, 'warm': 5.0}
# Medians of the four API services on fake:/ messaging (README, 870dc82).
BEFORE = {'cold': 11.7, 'warm': 3.85}

# Older trees' module of the console scripts (trovestack.commands.shell now).
OLD_SHELL = 'trovestack.shell'  # old layout


def tree_command(tree):
    """trovestack run from another checkout of this project (its package
    first on the path, the same venv): its console script's function,
    trovestack.commands.shell.main, or in older trees the main of the
    shell module at the package's top."""
    code = ('import sys\n'
            'try: from trovestack.commands.shell import main\n'
            f'except ImportError: from {OLD_SHELL} import main\n'
            'sys.exit(main())')
    return ['env', f'PYTHONPATH={tree}', sys.executable, '-c', code]


def _cloud(command, *args):
    subprocess.run([*command, 'cloud', *map(str, args), '-f', 'value'],
                   check=True, stdout=subprocess.DEVNULL)


def _timed(command, *args):
    start = time.perf_counter()
    _cloud(command, *args)
    return time.perf_counter() - start


def _children_cpu():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _program(proc):
    """A short name for one of the cloud's processes."""
    argv = proc.cmdline()
    for arg in argv:
        name = pathlib.Path(arg).name
        if name.startswith(('keystone', 'glance', 'nova', 'trove',
                            'placement', 'supervisord', 'rabbitmq')):
            return name
    if 'beam.smp' in proc.name():
        return 'rabbitmq (beam)'
    if 'gunicorn' in ' '.join(argv[:1]):
        return argv[0].split('[')[-1].split()[0]
    return proc.name()


def cloud_cpu(state):
    """{process: CPU seconds} of every process of the cloud in ``state``
    (its supervisor's tree), summed by program."""
    cpu = collections.Counter()
    for proc in psutil.process_iter():
        try:
            if str(state) not in ' '.join(proc.cmdline()) and \
                    str(state) not in proc.environ().get(
                        supervision.OWNER_VARIABLE, ''):
                continue
            times = proc.cpu_times()
            cpu[_program(proc)] += times.user + times.system
        except psutil.Error:
            continue
    return cpu


def measure(commands, runs):
    """{label: {kind: [seconds]}}, the commands taking turns each run."""
    results = {label: {'cold': [], 'warm': [], 'down': []}
               for label in commands}
    # The CPU a warm start costs: the command's own and every process of
    # the cloud's, just after it returned (2 cores bound the wall time
    # from below by half of it).
    results['cpu'] = collections.defaultdict(list)
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(runs):
            for label, command in commands.items():
                state = pathlib.Path(tmp) / f'{label}{i}'
                up = ('up', '--state-dir', state, '--base-port', 0,
                      '--clouds-yaml', state / 'clouds.yaml')
                times = results[label]
                try:
                    times['cold'].append(_timed(command, *up))
                    times['down'].append(_timed(command, 'down',
                                                '--state-dir', state))
                    before = _children_cpu()
                    times['warm'].append(_timed(command, *up))
                    if label == 'now':
                        cpu = results['cpu']
                        cpu['the command'].append(_children_cpu() - before)
                        for name, seconds in cloud_cpu(state).items():
                            cpu[name].append(seconds)
                finally:
                    _cloud(command, 'down', '--state-dir', state)
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--runs', type=int, default=3)
    parser.add_argument(
        '--old-tree', metavar='DIR', default=None,
        help='another checkout of this project (e.g. a git worktree of the '
             'previous commit), timed in turn with this one, on one machine')
    args = parser.parse_args()
    commands = {'now': [str(BIN / 'trovestack')]}
    if args.old_tree:
        commands['old'] = tree_command(args.old_tree)
    results = measure(commands, args.runs)
    cpu = results.pop('cpu')
    medians = {label: {kind: statistics.median(times)
                       for kind, times in kinds.items()}
               for label, kinds in results.items()}
    now = medians['now']
    old = medians.get('old', BEFORE)
    old_label = 'old s' if 'old' in medians else 'before s'
    print(f'{"":<6} {"now s":>9} {old_label:>9} {"now/old":>8} '
          f'{"goal s":>7} {"goal/now":>9}  runs now')
    for kind, median in now.items():
        runs = ' '.join(f'{t:.1f}' for t in results['now'][kind])
        base, goal = old.get(kind), GOALS.get(kind)
        cells = [f'{kind:<6}', f'{median:9.2f}',
                 f'{base:9.2f}' if base else ' ' * 9,
                 f'{median / base:8.2f}' if base else ' ' * 8,
                 f'{goal:7.1f}' if goal else ' ' * 7,
                 f'{goal / median:9.2f}' if goal else ' ' * 9]
        print(' '.join(cells) + f'  {runs}')
    print(f'warm restart is {now["cold"] / now["warm"]:.1f}x faster '
          f'than a cold start')
    print('\nCPU seconds of a warm start (median), by process:')
    total = 0.0
    for name, seconds in sorted(cpu.items(),
                                key=lambda item: -statistics.median(item[1])):
        median = statistics.median(seconds)
        total += median
        print(f'  {name:<28} {median:6.2f}')
    cores = psutil.cpu_count()
    print(f'  {"total":<28} {total:6.2f}  -> at least {total / cores:.2f} s '
          f'of wall time on {cores} cores')


if __name__ == '__main__':
    main()
