"""Open vSwitch (userspace datapath) and OVN, inside the cloud's namespace.

ovsdb-server, ovs-vswitchd, the OVN northbound/southbound databases,
ovn-northd and ovn-controller run by hand with every socket under the
cloud's ``/run`` directory.  Bridges use ``datapath_type=netdev`` (there is
no openvswitch kernel module); ``userspace-tso-enable`` is needed or guest
TCP silently fails while ping works.  The management network is a flat
provider network on ``br-mgmt``, whose internal port holds the gateway
address inside the namespace.
"""

import pathlib
import subprocess
from collections.abc import Callable

from trovestack.cloud import supervision
from trovestack.cloud.compute import common
from trovestack.cloud.compute import daemons
from trovestack.cloud.compute import paths as paths_mod

OVS_SCHEMA = pathlib.Path('/usr/share/openvswitch/vswitch.ovsschema')
NB_SCHEMA = pathlib.Path('/usr/share/ovn/ovn-nb.ovsschema')
SB_SCHEMA = pathlib.Path('/usr/share/ovn/ovn-sb.ovsschema')
DATABASES = {'ovsdb-server': OVS_SCHEMA, 'ovn-nb-db': NB_SCHEMA,
             'ovn-sb-db': SB_SCHEMA}
SOCKETS = {'ovsdb-server': 'db', 'ovn-nb-db': 'nb', 'ovn-sb-db': 'sb'}
PACKAGES = {'ovsdb-server': 'openvswitch-switch', 'ovn-northd': 'ovn-central',
            'ovn-controller': 'ovn-host'}


def connection(paths: paths_mod.ComputePaths, database: str) -> str:
    """ovsdb connection string: 'db' (Open_vSwitch), 'nb' or 'sb'."""
    return f'unix:{paths.socket(database)}'


def _env(paths: paths_mod.ComputePaths) -> dict[str, str]:
    run = str(paths.run_dir)
    return {'OVS_RUNDIR': run, 'OVN_RUNDIR': run,
            'OVS_DBDIR': str(paths.service_dir('ovs')),
            'OVN_DBDIR': str(paths.service_dir('ovs'))}


def _logging(paths: paths_mod.ComputePaths, name: str) -> list[str]:
    return [f'--pidfile={paths.run_dir / name}.pid',
            f'--log-file={paths.log_dir / name}.log']


def _database(paths: paths_mod.ComputePaths, name: str,
              schema: pathlib.Path) -> pathlib.Path:
    return paths.service_dir('ovs') / f'{schema.stem}.db'


def daemons_in_order(
        paths: paths_mod.ComputePaths) -> list[supervision.Program]:
    """The OVS/OVN processes, in the order they start."""
    ns, run, env = paths.namespace, paths.run_dir, _env(paths)
    result = []
    for name, schema in DATABASES.items():
        sock = paths.socket(SOCKETS[name])
        argv: common.Command = [
            'ovsdb-server', _database(paths, name, schema),
            f'--remote=punix:{sock}',
            f'--unixctl={run / name}.ctl', *_logging(paths, name)]
        if name == 'ovsdb-server':
            argv.insert(3, '--remote=db:Open_vSwitch,Open_vSwitch,'
                           'manager_options')
        result.append(supervision.Program(
            name, argv, ns, _socket_check(sock), env))
    # Its supervisor restarts it after a crash (SIGABRT on an assertion,
    # SIGSEGV...) instead of leaving every guest cut off: bookworm's 3.1.0
    # aborts now and then in its userspace conntrack under floating IP NAT
    # (OVS bug, fixed in 3.1.3; doc/trovestack.md).
    result.append(supervision.Program(
        'ovs-vswitchd',
        ['ovs-vswitchd', connection(paths, 'db'),
         f'--unixctl={run}/ovs-vswitchd.ctl',
         *_logging(paths, 'ovs-vswitchd')],
        ns, _socket_check(run / 'ovs-vswitchd.ctl'), env))
    result.append(supervision.Program(
        'ovn-northd',
        ['ovn-northd', f'--ovnnb-db={connection(paths, "nb")}',
         f'--ovnsb-db={connection(paths, "sb")}',
         f'--unixctl={run}/ovn-northd.ctl', *_logging(paths, 'ovn-northd')],
        ns, _socket_check(run / 'ovn-northd.ctl'), env))
    result.append(supervision.Program(
        'ovn-controller',
        ['ovn-controller', connection(paths, 'db'),
         *_logging(paths, 'ovn-controller')],
        ns, lambda: _chassis_registered(paths), env))
    return result


def _socket_check(path: pathlib.Path) -> Callable[[], bool]:
    return lambda: daemons.unix_socket_answers(path)


def vsctl(paths: paths_mod.ComputePaths, *args: str,
          check: bool = True) -> subprocess.CompletedProcess[str]:
    return daemons.run(['ovs-vsctl', f'--db={connection(paths, "db")}',
                        '--timeout=20', *args], check=check)


def _chassis_registered(paths: paths_mod.ComputePaths) -> bool:
    result = daemons.run(['ovn-sbctl', f'--db={connection(paths, "sb")}',
                          '--timeout=5', '--bare', '--columns=name',
                          'find', 'Chassis',
                          f'name={paths_mod.COMPUTE_HOST}'], check=False)
    return paths_mod.COMPUTE_HOST in result.stdout


def create_databases(paths: paths_mod.ComputePaths) -> None:
    """ovsdb files from the installed schemas (first start only)."""
    for name, schema in DATABASES.items():
        if not schema.exists():
            raise daemons.ComputeError(
                f'{schema} not found: install the Debian packages '
                'openvswitch-switch ovn-central ovn-host')
        db = _database(paths, name, schema)
        if not db.exists():
            db.parent.mkdir(parents=True, exist_ok=True)
            daemons.run(['ovsdb-tool', 'create', db, schema])


def configure_switch(paths: paths_mod.ComputePaths,
                     cstate: paths_mod.ComputeState) -> None:
    """Open_vSwitch settings that ovs-vswitchd and ovn-controller read."""
    host = paths_mod.COMPUTE_HOST
    vsctl(paths, '--no-wait', 'init')
    vsctl(paths, '--no-wait', 'set', 'Open_vSwitch', '.',
          'other_config:userspace-tso-enable=true',
          f'external_ids:system-id={host}',
          f'external_ids:hostname={host}',
          f'external_ids:ovn-remote={connection(paths, "sb")}',
          'external_ids:ovn-encap-type=geneve',
          'external_ids:ovn-encap-ip=127.0.0.1',
          'external_ids:ovn-bridge-datapath-type=netdev',
          # Routers' gateway ports (SNAT, floating IPs) live here.
          'external_ids:ovn-cms-options=enable-chassis-as-gw',
          'external_ids:ovn-bridge-mappings=' + ','.join(
              f'{physnet}:{bridge}'
              for physnet, bridge, _ in cstate.bridges()))


def add_bridges(paths: paths_mod.ComputePaths,
                cstate: paths_mod.ComputeState) -> None:
    """The provider bridges (netdev), each with the namespace's gateway
    address, up, in the namespace; and the namespace's route to the users'
    private network through their router, as devstack gives its host."""
    ns = paths.namespace
    for _, bridge, address in cstate.bridges():
        vsctl(paths, '--may-exist', 'add-br', bridge, '--', 'set', 'bridge',
              bridge, 'datapath_type=netdev')
        addresses = daemons.run(['ip', '-o', 'addr', 'show', 'dev', bridge],
                                netns=ns).stdout
        if f' {address} ' not in addresses:
            daemons.run(['ip', 'addr', 'add', address, 'dev', bridge],
                        netns=ns)
        daemons.run(['ip', 'link', 'set', bridge, 'up'], netns=ns)
    daemons.run(['ip', 'route', 'replace', cstate.private_cidr, 'via',
                 cstate.router_address], netns=ns)
