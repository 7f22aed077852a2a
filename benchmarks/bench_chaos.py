#!/usr/bin/env python3
"""Chaos on a running compute cloud: every process killed in turn.

Takes a compute cloud that is up (``trovestack cloud up --compute`` and
``trovestack provision``) and a Trove instance on it (``--instance``,
created with the cloud's defaults when missing), makes a database, then
sends SIGKILL to each supervised process of the cloud, one at a time, and
prints per process: whether its supervisor ran it again, the seconds until
it answered its probe, and whether (and when) a Trove call to the
instance (its databases) answered again.  Ends by checking the database
made before is still listed.  Root only; the instance is left in place
(``trovestack instance down NAME``).

    .venv/bin/python benchmarks/bench_chaos.py --state-dir DIR [--instance N]
"""

import argparse
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from tests.integration import chaos_support  # noqa: E402
from trovestack.cloud import bootstrap  # noqa: E402
from trovestack.cloud import controlplane  # noqa: E402
from trovestack.cloud.compute import cloud as compute_cloud  # noqa: E402
from trovestack.common import connection  # noqa: E402
from trovestack.trove import instances  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--state-dir', required=True)
    parser.add_argument('--instance', default='chaos')
    parser.add_argument('--only', nargs='*', default=None,
                        help='kill only these processes')
    args = parser.parse_args()

    cloud = controlplane.LocalCloud(args.state_dir)
    layer = compute_cloud.ComputeLayer(cloud.layout)
    conn = bootstrap.admin_connection(cloud.state)
    trove = connection.trove_client(conn)
    found = instances.ensure_instance(conn, args.instance, volume_size=1,
                                      progress=lambda line: print(line))
    trove.databases.create(found.id, [{'name': 'before_chaos'}])

    def databases():
        return {db.name for db in trove.databases.list(found.id)}

    programs = [program for program in chaos_support.programs(cloud, layer)
                if args.only is None or program.name in args.only]
    print(f'{"process":20} {"restarted":>9} {"probe s":>8} {"answered":>8} '
          f'{"call s":>7}')
    failed = 0
    for program in programs:
        r = chaos_support.kill_and_recover(cloud, program, databases)
        failed += not (r.restarted and r.answered)
        print(f'{r.name:20} {"yes" if r.restarted else "NO":>9} '
              f'{r.restart_seconds:8.1f} {"yes" if r.answered else "NO":>8} '
              f'{r.answer_seconds:7.1f} {r.error}', flush=True)
    kept = 'before_chaos' in databases()
    print(f'database made before the kills still listed: {kept}')
    return 1 if failed or not kept else 0


if __name__ == '__main__':
    sys.exit(main())
