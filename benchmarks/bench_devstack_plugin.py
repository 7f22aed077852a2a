#!/usr/bin/env python3
"""The devstack plugin's phases for one sample, timed, on one local cloud.

Brings up (or reuses) a local control plane in ``--state-dir``, runs the
sample's phases the way tests/integration/test_devstack_plugin.py does
(pre-install .. test-config, extra again, unstack, clean) through
``tests/devstack/run-plugin`` and prints each phase's seconds and their
sum.  ``--repo`` runs another checkout's plugin and harness (e.g. an older
commit from ``git archive``) on the same cloud, so two trees can be timed
back to back under the same load.  The cloud keeps running afterwards
(``trovestack cloud down`` with the same state directory stops it).

    .venv/bin/python benchmarks/bench_devstack_plugin.py \\
        [--sample samples/localrc/mysql.conf] [--repo DIR] [--runs 1]

Measured on the 2-core machine, loaded by other sessions (load 5-10),
mysql.conf, one run each, alternating base (83cf30d) and this tree:
post-config 140/184 s -> 42/72 s (Keystone helpers in one process each,
iniset without a process per option), the whole sample 254/353 s ->
172/237 s.  The whole module (tests/integration/test_devstack_plugin.py
and tests/devstack, pytest --durations=0, 64 passed each): 3407 s ->
1857 s; besides the phases, the test's own checks went from `openstack`
client starts (~240 s in all) to in-process openstacksdk/troveclient
(under 1 s).  The 'after' tree also had other sessions' load-image and
connection start-up work in it (a03bfbc, 7c23d65): devstack-extra is
partly theirs.
"""

import argparse
import os
import pathlib
import sys
import tempfile
import time

TOP = pathlib.Path(__file__).resolve().parents[1]
STEPS = (('stack', 'pre-install'), ('stack', 'install'),
         ('stack', 'post-config'), ('stack', 'extra'),
         ('stack', 'test-config'), ('stack', 'extra'), ('unstack',),
         ('clean',))


def _run_sample(repo, cloud, sample):
    """{step: seconds} of one sample's phases with ``repo``'s plugin."""
    sys.path.insert(0, str(repo))
    from tests.conftest import LocalCloudFixture
    from tests.devstack import harness
    from tests.load_image_support import make_qcow2_image

    root = pathlib.Path(tempfile.mkdtemp(prefix='bench-devstack-'))
    image = root / 'guest.qcow2'
    make_qcow2_image(image)
    local_conf = root / 'local.conf'
    local_conf.write_text(
        sample.read_text() + f'\nTROVE_GUEST_IMAGE={image}\n'
        'TROVE_LOAD_CONFIG_PARAMS=False\n'
        f'TROVE_DATASTORE_REGISTRY=127.0.0.1:{harness.free_port()}\n')
    plugin = harness.PluginHarness(LocalCloudFixture(cloud), root,
                                   TROVE_UNSTACK_REMOVES_RESOURCES='True')
    times = {}
    for step in STEPS:
        start = time.perf_counter()
        plugin.run(*step, local_conf=local_conf)
        name = ' '.join(step)
        times[name] = times.get(name, 0.0) + time.perf_counter() - start
    return times


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--sample', type=pathlib.Path,
                        default=TOP / 'samples' / 'localrc' / 'mysql.conf')
    parser.add_argument('--repo', type=pathlib.Path, default=TOP)
    parser.add_argument('--state-dir', type=pathlib.Path,
                        default=pathlib.Path(tempfile.gettempdir())
                        / 'bench-devstack-cloud')
    parser.add_argument('--runs', type=int, default=1)
    args = parser.parse_args()
    repo = args.repo.resolve()
    if repo != TOP and os.environ.get('PYTHONPATH') != str(repo):
        # The other tree's plugin, harness and commands.
        os.execve(sys.executable, [sys.executable, *sys.argv],
                  dict(os.environ, PYTHONPATH=str(repo)))
    from trovestack.cloud import controlplane

    cloud = controlplane.LocalCloud(args.state_dir)
    cloud.up(base_port=0, clouds_yaml_path=args.state_dir / 'clouds.yaml')
    for run in range(args.runs):
        times = _run_sample(repo, cloud, args.sample)
        for name, seconds in times.items():
            print(f'{name:20} {seconds:7.1f} s')
        print(f'{"sum":20} {sum(times.values()):7.1f} s  (run {run + 1}, '
              f'{repo})')
    return 0


if __name__ == '__main__':
    sys.exit(main())
