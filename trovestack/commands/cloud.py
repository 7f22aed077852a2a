"""``trovestack cloud up|down|status|env|restart``: the local control plane.

The control plane's and compute layer's modules are imported by the
commands that use them, not by the others that share the arguments
below (``provision``).
"""

import argparse
import logging
import os
import shlex

from cliff import command
from cliff import lister

from trovestack.cloud import LocalCloudError
from trovestack.cloud import clouds_yaml
from trovestack.cloud import layout

LOG = logging.getLogger(__name__)
# 'Code': which Trove runs (Trove's services' rows: the release, or the
# tree's path, commit and uncommitted changes).
STATUS_COLUMNS = ('Service', 'State', 'PID', 'URL', 'Crashes',
                  'Last error', 'Code')
TROVE_SOURCE_ENV = 'TROVESTACK_TROVE_SOURCE'


def _with_code(cloud, rows):
    """Status rows with the 'Code' column: what Trove's services run."""
    from trovestack.cloud.services import TROVE_SERVICES

    code = cloud.trove_runs().describe()
    return [(*row, code if row[0] in TROVE_SERVICES else '')
            for row in rows]


def add_state_dir_argument(parser):
    parser.add_argument(
        '--state-dir', metavar='<dir>', default=None,
        help='Directory holding the cloud\'s configuration, databases, logs '
             'and pid files (default: $TROVESTACK_STATE_DIR, else '
             '$XDG_STATE_HOME/trovestack/cloud)')
    return parser


def _port(value):
    port = int(value)
    if not (port == 0 or 1024 <= port <= 65532):
        raise ValueError(value)
    return port


def add_base_port_argument(parser):
    parser.add_argument(
        '--base-port', metavar='<port>', type=_port,
        default=layout.DEFAULT_BASE_PORT,
        help='First of five consecutive loopback ports of the local cloud '
             '(keystone, glance, nova, trove, rabbitmq; the registry and '
             'the dashboard take the next free ones); 0 picks free ports. '
             'Used when the cloud is first created (default: '
             f'{layout.DEFAULT_BASE_PORT})')
    return parser


def _existing_cloud(parsed_args):
    from trovestack.cloud import controlplane

    cloud = controlplane.LocalCloud(parsed_args.state_dir)
    if cloud.state is None:
        raise LocalCloudError(f'no local cloud in {cloud.layout.root}; run '
                         f'"trovestack cloud up" first')
    return cloud


class CloudUp(lister.Lister):
    _description = ('Start the local RabbitMQ, Keystone, Glance, Nova API, '
                    'Trove API, trove-taskmanager and trove-conductor '
                    '(bootstrapping them on first use)')

    def get_parser(self, prog_name):
        from trovestack.cloud import controlplane

        parser = add_state_dir_argument(super().get_parser(prog_name))
        add_base_port_argument(parser)
        parser.add_argument(
            '--clouds-yaml', metavar='<file>', default=None,
            help='clouds.yaml to add the trovestack-admin and trovestack-demo '
                 'clouds to (default: ~/.config/openstack/clouds.yaml; a '
                 'copy is always kept in the state directory)')
        parser.add_argument(
            '--fresh', action='store_true',
            help='Stop the cloud and wipe its state before starting')
        parser.add_argument(
            '--timeout', metavar='<seconds>', type=float,
            default=controlplane.START_TIMEOUT,
            help='Seconds each service may take to answer '
                 f'(default: {controlplane.START_TIMEOUT:g})')
        parser.add_argument(
            '--registry', action=argparse.BooleanOptionalAction,
            default=None,
            help='Also run a container registry (Debian docker-registry) '
                 'for datastore images, and on a compute cloud for the '
                 'backup images its guests pull; remembered for later runs '
                 '(default: as the cloud had it, else on with a first '
                 '--compute, else off)')
        parser.add_argument(
            '--dashboard', action=argparse.BooleanOptionalAction,
            default=None,
            help='Also run the dashboard (Horizon with trove-dashboard) on '
                 'loopback, where the cloud\'s admin and demo users log in; '
                 'remembered for later runs (default: as the cloud had it, '
                 'else off)')
        parser.add_argument(
            '--compute', action='store_true',
            help='Also run placement, neutron (ML2/OVN), nova conductor/'
                 'scheduler/compute (libvirt, qemu TCG) and Open vSwitch/OVN '
                 'in a network namespace of the cloud\'s own, so servers and '
                 'Trove instances can boot; remembered for later runs '
                 '(root; default: off)')
        parser.add_argument(
            '--trove-source', metavar='<dir>|release',
            default=os.environ.get(TROVE_SOURCE_ENV) or None,
            help='Run Trove\'s services from this Trove source tree '
                 '(installed editable in an environment of its own under '
                 'the state directory, resolved against the project\'s '
                 'constraints), or "release" for the trove release '
                 'installed with trovestack; remembered for later runs '
                 f'(default: ${TROVE_SOURCE_ENV}, else as the cloud had '
                 'it, else the release)')
        return parser

    def take_action(self, parsed_args):
        from trovestack.cloud import controlplane
        from trovestack.cloud.compute import cloud as compute_cloud

        cloud = controlplane.LocalCloud(parsed_args.state_dir)
        up_args = dict(base_port=parsed_args.base_port,
                       clouds_yaml_path=parsed_args.clouds_yaml,
                       fresh=parsed_args.fresh,
                       timeout=parsed_args.timeout,
                       registry=parsed_args.registry,
                       dashboard=parsed_args.dashboard)
        if parsed_args.trove_source:
            up_args['trove_source'] = parsed_args.trove_source
        if parsed_args.fresh:
            compute_cloud.ComputeLayer(cloud.layout).wipe()
        if parsed_args.compute and parsed_args.registry is None and (
                parsed_args.fresh or not compute_cloud.is_enabled(cloud)):
            # Guests pull Trove's backup images from it.
            up_args['registry'] = True
        if parsed_args.compute or compute_cloud.is_enabled(cloud):
            rows, health = compute_cloud.up_with_control_plane(cloud,
                                                               **up_args)
            return STATUS_COLUMNS, _with_code(
                cloud, [*rows, *compute_cloud.status_rows(health)])
        return STATUS_COLUMNS, _with_code(cloud, cloud.up(**up_args))


class CloudDown(lister.Lister):
    _description = ('Stop the services of the local cloud (only those it '
                    'started); a compute cloud\'s guests power off cleanly '
                    'first and start again with the next cloud up')

    def get_parser(self, prog_name):
        return add_state_dir_argument(super().get_parser(prog_name))

    def take_action(self, parsed_args):
        from trovestack.cloud import controlplane
        from trovestack.cloud.compute import cloud as compute_cloud

        cloud = controlplane.LocalCloud(parsed_args.state_dir)
        rows = [(name, 'stopped' if was_up else 'was not running')
                for name, was_up in compute_cloud.down_with_control_plane(
                    cloud)]
        return ('Service', 'Result'), rows


def _status_table(cloud, rows):
    """(columns, rows): the control plane's ``rows`` (status or restart),
    the compute layer's processes, and which Trove runs."""
    from trovestack.cloud.compute import cloud as compute_cloud

    layer = compute_cloud.ComputeLayer(cloud.layout)
    return STATUS_COLUMNS, _with_code(
        cloud, [*rows, *compute_cloud.status_rows(layer.status())])


class CloudStatus(lister.Lister):
    _description = ('Show whether each process of the local cloud is running '
                    'and answering (HTTP services their URL, RabbitMQ a '
                    'login, taskmanager and conductor by consuming their RPC '
                    'topics)')

    def get_parser(self, prog_name):
        return add_state_dir_argument(super().get_parser(prog_name))

    def take_action(self, parsed_args):
        cloud = _existing_cloud(parsed_args)
        return _status_table(cloud, cloud.status())


class CloudRestart(lister.Lister):
    _description = ('Restart processes of the local cloud, nothing else: '
                    '"trove" (the default) restarts Trove\'s API, task '
                    'manager and conductor with the code of the cloud\'s '
                    'Trove as it is now (a tree\'s changed requirements '
                    'installed, its db_sync run when its database code '
                    'changed); "trove-api" the API alone; any other name '
                    'that process')

    def get_parser(self, prog_name):
        from trovestack.cloud import controlplane

        parser = add_state_dir_argument(super().get_parser(prog_name))
        parser.add_argument(
            'services', metavar='<service>', nargs='*',
            default=[controlplane.TROVE_GROUP],
            help='trove, or a process as cloud status names it (default: '
                 'trove)')
        parser.add_argument(
            '--timeout', metavar='<seconds>', type=float,
            default=controlplane.START_TIMEOUT,
            help='Seconds each service may take to answer '
                 f'(default: {controlplane.START_TIMEOUT:g})')
        return parser

    def take_action(self, parsed_args):
        cloud = _existing_cloud(parsed_args)
        return _status_table(cloud, cloud.restart_services(
            parsed_args.services, parsed_args.timeout))


class CloudEnv(command.Command):
    _description = ('Print shell export lines that point OpenStack clients at '
                    'the local cloud (eval "$(trovestack cloud env)"), and '
                    'the dashboard\'s URL as a comment when it runs')

    def get_parser(self, prog_name):
        parser = add_state_dir_argument(super().get_parser(prog_name))
        parser.add_argument(
            '--cloud',
            choices=(clouds_yaml.ADMIN_CLOUD, clouds_yaml.DEMO_CLOUD),
            default=clouds_yaml.ADMIN_CLOUD,
            help='Which account to select '
                 f'(default: {clouds_yaml.ADMIN_CLOUD})')
        return parser

    def take_action(self, parsed_args):
        cloud = _existing_cloud(parsed_args)
        for key, value in sorted(cloud.env(parsed_args.cloud).items()):
            self.app.stdout.write(f'export {key}={shlex.quote(value)}\n')
        url = cloud.dashboard_url()
        if url:
            self.app.stdout.write(
                f'# dashboard: {url} (admin or demo, their passwords in '
                f'{cloud.layout.clouds_yaml})\n')
