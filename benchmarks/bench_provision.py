#!/usr/bin/env python3
"""trovestack provision against the CLI sequence of the upstream plugin.

The same provisioning both ways, each on a fresh local cloud, in one run:

- ours: ``trovestack provision mysql:8.4 --image IMG`` (one process: image
  upload, datastore version + default, the 44 test flavors, tempest.conf);
- theirs: what upstream's devstack plugin and ``trovestack test-init`` run
  for it: ``openstack image create``, three ``trove-manage`` calls and one
  ``openstack flavor create`` (plus ``flavor set`` for extra specs) per
  flavor.  Writing tempest.conf (bash ``iniset`` upstream) is left out of
  their side.

Then both again with nothing changed (upstream would upload a duplicate
image and fail on the existing flavors; ours reports "unchanged").
Goal: ours >= 20x faster (issue 23; 10x before).

    .venv/bin/python benchmarks/bench_provision.py [--size-mib 200]
"""

import argparse
import os
import pathlib
import sys
import tempfile
import time

import bench_load_image as common

from trovestack.testenv import flavors


def cli_flavors(env):
    for spec in flavors.flavor_specs():
        common._run(common.BIN / 'openstack', '--os-cloud', common.ADMIN,
                    'flavor', 'create', spec.name, '--id', spec.id,
                    '--ram', spec.ram, '--disk', spec.disk,
                    '--vcpus', spec.vcpus, '--ephemeral', spec.ephemeral,
                    *[arg for key, value in spec.extra_specs
                      for arg in ('--property', f'{key}={value}')],
                    env=env)


def theirs(image, env, trove_conf):
    common.cli_sequence(image, 'mysql', '8.4', env, trove_conf)
    cli_flavors(env)


def ours(image, env, tempest_conf):
    common._run(common.BIN / 'trovestack', 'provision', 'mysql:8.4',
                '--image', image, '--os-cloud', common.ADMIN,
                '--tempest-conf', tempest_conf, '-f', 'json', env=env)


def _timed(function, *args):
    start = time.perf_counter()
    function(*args)
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--size-mib', type=int, default=200,
                        help='Size of the test image (default: 200)')
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        image = pathlib.Path(tmp) / 'trove-guest-bench.img'
        common.write_image(image, args.size_mib * common.MiB)
        times = {}
        with common.local_cloud(None) as (clouds_yaml, trove_conf):
            env = dict(os.environ, OS_CLIENT_CONFIG_FILE=str(clouds_yaml))
            times['theirs'] = _timed(theirs, image, env, trove_conf)
        with common.local_cloud(None) as (clouds_yaml, _trove_conf):
            env = dict(os.environ, OS_CLIENT_CONFIG_FILE=str(clouds_yaml))
            tempest_conf = pathlib.Path(tmp) / 'tempest.conf'
            times['ours'] = _timed(ours, image, env, tempest_conf)
            times['ours again'] = _timed(ours, image, env, tempest_conf)
    n = len(flavors.flavor_specs())
    print(f'image {args.size_mib} MiB, {n} flavors, one run, seconds')
    for label, key in (('openstack + trove-manage CLI sequence', 'theirs'),
                       ('trovestack provision', 'ours'),
                       ('trovestack provision, nothing changed',
                        'ours again')):
        print(f'{label:<40}{times[key]:8.2f}')
    print(f'provisioning: ours is {times["theirs"] / times["ours"]:.1f}x '
          'faster than the CLI sequence (goal >= 20x)')


if __name__ == '__main__':
    sys.exit(main())
