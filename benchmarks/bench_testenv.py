#!/usr/bin/env python3
"""Test flavors + tempest config: trovestack vs the openstack CLI sequence.

Side by side on the same cloud, in one run:

* trovestack: ``trovestack flavors`` then ``trovestack test-config``;
* CLI: what the old trovestack/devstack scripts did, one ``openstack``
  process per step: ``flavor list``, one ``flavor create`` per missing
  flavor (plus ``flavor set --property`` for extra specs), then
  ``datastore list`` and ``datastore version list`` to find the values
  for tempest.conf.

Each is timed from a cloud without the flavors ("cold") and again when
everything exists ("warm"). Without --os-cloud a temporary local cloud is
started and removed afterwards. Prints seconds and CLI/trovestack ratios.
"""

import argparse
import contextlib
import os
import pathlib
import subprocess
import sys
import tempfile
import time
import warnings

BIN = pathlib.Path(sys.executable).parent


def _run(env, *argv):
    subprocess.run([str(BIN / argv[0]), *map(str, argv[1:])], env=env,
                   check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)


def _timed(step):
    start = time.monotonic()
    calls = step()
    return time.monotonic() - start, calls


@contextlib.contextmanager
def _cloud(args):
    if args.os_cloud:
        yield os.environ.copy(), args.os_cloud
        return
    from trovestack.cloud import clouds_yaml
    from trovestack.cloud import controlplane

    with tempfile.TemporaryDirectory(prefix='bench-testenv-') as tmp:
        cloud = controlplane.LocalCloud(pathlib.Path(tmp) / 'cloud')
        print('Starting a temporary local cloud...', flush=True)
        cloud.up(base_port=0,
                 clouds_yaml_path=pathlib.Path(tmp) / 'clouds.yaml')
        try:
            env = dict(os.environ, OS_CLIENT_CONFIG_FILE=str(
                cloud.layout.clouds_yaml))
            env.pop('OS_CLOUD', None)
            yield env, clouds_yaml.ADMIN_CLOUD
        finally:
            cloud.down()


def _connect(env, cloud):
    os.environ['OS_CLIENT_CONFIG_FILE'] = env.get('OS_CLIENT_CONFIG_FILE', '')
    from trovestack.common import connection

    return connection.connect(cloud=cloud)


def _ensure_datastore(conn, workdir):
    """A datastore version for test config to find (registered untimed)."""
    from trovestack.common import connection

    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        trove = connection.trove_client(conn)
    if any(ds.name == 'bench-mysql' for ds in trove.datastores.list()):
        return
    raw = workdir / 'tiny.raw'
    raw.write_bytes(b'\0' * 4096)
    image = conn.image.create_image(
        name='bench-testenv-tiny', filename=str(raw), disk_format='raw',
        container_format='bare', wait=True)
    trove.mgmt_ds_versions.create('8.4', 'bench-mysql', 'mysql', image.id,
                                  active='true', default='true')


def _delete_flavors(conn, specs):
    for spec in specs:
        conn.compute.delete_flavor(spec.id, ignore_missing=True)


def _ours(env, cloud, flavor_set, tempest_conf):
    def step():
        _run(env, 'trovestack', 'flavors', '--flavor-set', flavor_set,
             '--os-cloud', cloud)
        _run(env, 'trovestack', 'test-config', '--tempest-conf',
             tempest_conf, '--datastore', 'bench-mysql', '--os-cloud', cloud)
        return 2
    return step


def _cli(env, cloud, conn, specs):
    def step():
        existing = {f.name for f in conn.compute.flavors(is_public=None)}
        os_cmd = ('openstack', '--os-cloud', cloud)
        _run(env, *os_cmd, 'flavor', 'list')
        calls = 1
        for spec in specs:
            if spec.name in existing:
                continue
            _run(env, *os_cmd, 'flavor', 'create', spec.name, '--id',
                 spec.id, '--ram', spec.ram, '--disk', spec.disk, '--vcpus',
                 spec.vcpus, '--ephemeral', spec.ephemeral,
                 *[arg for key, value in spec.extra_specs
                   for arg in ('--property', f'{key}={value}')])
            calls += 1
        _run(env, *os_cmd, 'datastore', 'list')
        _run(env, *os_cmd, 'datastore', 'version', 'list', 'bench-mysql')
        return calls + 2
    return step


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        '--os-cloud', metavar='<cloud>',
        help='Existing cloud to measure on (default: start a temporary '
             'local cloud)')
    parser.add_argument(
        '--flavor-set', choices=('tempest', 'redstack', 'all'),
        default='all', help='Flavors to create (default: all)')
    args = parser.parse_args(argv)

    from trovestack.testenv import flavors

    specs = flavors.flavor_specs(args.flavor_set)
    with _cloud(args) as (env, cloud), \
            tempfile.TemporaryDirectory() as tmp:
        workdir = pathlib.Path(tmp)
        conn = _connect(env, cloud)
        _ensure_datastore(conn, workdir)
        results = {}
        for label, step in (
                ('trovestack', _ours(env, cloud, args.flavor_set,
                                     workdir / 'tempest.conf')),
                ('openstack CLI', _cli(env, cloud, conn, specs))):
            _delete_flavors(conn, specs)
            (workdir / 'tempest.conf').unlink(missing_ok=True)
            results[label] = (_timed(step), _timed(step))
        _delete_flavors(conn, specs)

    print(f'\n{len(specs)} flavors + tempest [database] values')
    print(f'{"":16}{"cold s":>9}{"calls":>7}{"warm s":>9}{"calls":>7}')
    for label, ((cold, cold_calls), (warm, warm_calls)) in results.items():
        print(f'{label:16}{cold:9.2f}{cold_calls:7}{warm:9.2f}{warm_calls:7}')
    (ours_cold, _), (ours_warm, _) = results['trovestack']
    (cli_cold, _), (cli_warm, _) = results['openstack CLI']
    print(f'{"CLI/trovestack":16}{cli_cold / ours_cold:8.1f}x{"":7}'
          f'{cli_warm / ours_warm:8.1f}x')
    return 0


if __name__ == '__main__':
    sys.exit(main())
