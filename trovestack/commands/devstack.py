"""``trovestack devstack-extra``: the devstack plugin's extra phase.

Parses the plugin's settings (passed as options by devstack/lib/trove),
calls :func:`trovestack.orchestration.devstack.extra` and lists what it did.
"""

import logging
import socket

from cliff import lister

from trovestack.commands import cliapp
from trovestack.common import connection
from trovestack.common import errors
from trovestack.images.guest import guest_agent
from trovestack.orchestration import devstack
from trovestack.testenv import datastores
from trovestack.testenv import keypair
from trovestack.trove import instance_prereqs
from trovestack.trove import trove_config

LOG = logging.getLogger(__name__)

COLUMNS = ('kind', 'name', 'action', 'detail')
# The timeouts the plugin's settings change (the others: TCG_TIMEOUTS).
TIMEOUTS = ('usage_timeout', 'agent_call_low_timeout',
            'agent_call_high_timeout', 'state_change_wait_time',
            'command_process_timeout', 'resize_time_out')


def _datastore_version(text):
    name, version = datastores.parse_datastore_arg(text)
    if version is None:
        raise ValueError(f'{text!r} is not <datastore>:<version>')
    return name, version


def _comma_list(text):
    return tuple(item.strip() for item in text.split(',') if item.strip())


def _image_override(text):
    name, sep, image = text.partition('=')
    if not sep or not name or not image:
        raise ValueError(f'{text!r} is not DATASTORE=REPOSITORY')
    return name, image


def _bool(text):
    if text in ('True', 'False'):
        return text == 'True'
    raise ValueError(f'{text!r} is not True or False')


def _timeout_argument(parser, name):
    default = getattr(trove_config.TCG_TIMEOUTS, name)
    parser.add_argument(
        '--' + name.replace('_', '-'), metavar='<seconds>',
        type=cliapp.positive_int, default=default,
        help=f'Trove [DEFAULT] {name} (default: {default})')


class DevstackExtra(lister.Lister):
    _description = ("The devstack plugin's extra phase: datastore images, "
                    'one guest image, Glance, datastore versions and '
                    "defaults, Trove's instance prerequisites and "
                    'configuration')

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument(
            'datastores', metavar='<datastore>:<version>', nargs='+',
            type=cliapp.argument_type(_datastore_version),
            help='Datastores in order: the first version of each is its '
                 "default, the first datastore Trove's default")
        parser.add_argument('--trove-conf', required=True, metavar='<path>',
                            help='trove.conf to write instance options to')
        parser.add_argument('--guestagent-conf', required=True,
                            metavar='<path>',
                            help='trove-guestagent.conf to write to')
        parser.add_argument('--image', metavar='<file>',
                            help='Guest image to use (default: build one)')
        parser.add_argument('--image-dir', metavar='<dir>',
                            help='Where the built image goes')
        parser.add_argument('--cache-dir', metavar='<dir>',
                            help='Image builder cache')
        parser.add_argument('--guest-os', default='ubuntu',
                            help='Guest OS (default: ubuntu)')
        parser.add_argument('--guest-release', default='noble',
                            help='Guest OS release (default: noble)')
        parser.add_argument(
            '--guest-user', metavar='<name>',
            default=trove_config.GUEST_USER,
            type=cliapp.argument_type(trove_config.guest_user),
            help="The guest image's login user: a build makes it, Trove's "
                 'injected configuration is owned by it '
                 f'(default: {trove_config.GUEST_USER}; Trove\'s own '
                 'images: ubuntu)')
        parser.add_argument('--mirror', help='Distribution mirror')
        parser.add_argument(
            '--guest-agent-source', choices=guest_agent.SOURCES,
            default=guest_agent.PIP,
            help='Where a build takes the guest agent from: local (a Trove '
                 'tree), pip (a release) or git (a repository); default: '
                 'pip (the plugin passes TROVE_GUEST_AGENT_SOURCE, local '
                 'and $TROVE_DIR by default)')
        parser.add_argument(
            '--guest-agent-path', metavar='<dir-or-url>',
            help='local: the Trove source tree; git: the repository URL')
        parser.add_argument(
            '--guest-agent-ref', metavar='<ref>',
            help='git: the branch or tag (default: master); pip: the '
                 "release (default: the image builder's, "
                 f'{guest_agent.DEFAULT_PIP_REF})')
        parser.add_argument('--force-build', action='store_true',
                            help='Rebuild even when unchanged')
        parser.add_argument(
            '--visibility', default='public',
            choices=('public', 'private', 'shared', 'community'),
            help='Glance visibility (default: public)')
        parser.add_argument(
            '--config-params-tree', metavar='<dir>',
            help='The Trove source tree that runs: load each version\'s '
                 'configuration parameters from its trove/templates/'
                 '<datastore>/validation-rules.json (default: do not load)')
        parser.add_argument(
            '--trove-manage', metavar='<command>',
            help='Load them with this trove-manage and --trove-conf into '
                 "Trove's database, every parameter (default: through the "
                 'management API, which takes only strings and bounded '
                 'integers)')
        parser.add_argument(
            '--image-source', choices=devstack.IMAGE_SOURCES,
            default='upstream',
            help='Where guests get datastore container images '
                 '(default: upstream)')
        parser.add_argument(
            '--backup-image-source', choices=devstack.BACKUP_IMAGE_SOURCES,
            help='Where guests get backup images (default: registry with '
                 '--image-source registry, else upstream)')
        parser.add_argument(
            '--registry', metavar='<host:port>',
            help='The registry of the registry sources, as guests reach it')
        parser.add_argument('--registry-dir', metavar='<dir>',
                            help="The local registry's data directory")
        parser.add_argument(
            '--registry-push', metavar='<host:port>',
            help='Push to an existing registry at this address instead of '
                 'starting one (--registry: the same, as guests reach it)')
        parser.add_argument(
            '--datastore-image', metavar='<datastore>=<repository>',
            action='append', default=[],
            type=cliapp.argument_type(_image_override),
            help='Image repository of one datastore (repeatable)')
        parser.add_argument(
            '--insecure-registries', metavar='<a,b>', type=_comma_list,
            default=(), help='Registries guests trust without TLS')
        parser.add_argument('--network-isolation', type=_bool,
                            default=False, metavar='True|False',
                            help='[network] network_isolation '
                                 '(default: False)')
        parser.add_argument('--volume-support', type=_bool, default=True,
                            metavar='True|False',
                            help='Cinder volumes for data (default: True)')
        parser.add_argument('--volume-type', metavar='<type>',
                            help='Cinder volume type (default: Cinder\'s)')
        for name in TIMEOUTS:
            _timeout_argument(parser, name)
        for name, default in trove_config.LIMITS.items():
            parser.add_argument(
                '--' + name.replace('_', '-'), metavar='<n>',
                type=cliapp.positive_int,
                help=f"Trove [DEFAULT] {name} (default: Trove's, {default})")
        parser.add_argument('--project', default='service',
                            help="Trove's service project (default: "
                                 'service)')
        parser.add_argument('--mgmt-network', default='trove-mgmt',
                            help='Management network (default: trove-mgmt)')
        parser.add_argument('--mgmt-subnet', default='',
                            help='Its subnet (default: <network>-subnet)')
        parser.add_argument('--mgmt-subnet-range',
                            default=instance_prereqs.Wanted.cidr,
                            help='Its CIDR (default: '
                                 f'{instance_prereqs.Wanted.cidr})')
        parser.add_argument(
            '--mgmt-physical-network', metavar='<physnet>', default='',
            help='Make the management network a flat provider network on '
                 'this physical network (default: a tenant network)')
        parser.add_argument(
            '--mgmt-gateway', metavar='<address>', default='',
            help="An address this host holds on the management network: "
                 "the subnet's gateway, and where guests reach RabbitMQ "
                 '(default: none)')
        parser.add_argument(
            '--mgmt-shared', type=_bool, default=False,
            metavar='True|False',
            help='Share the management network with every project '
                 '(default: False)')
        parser.add_argument('--mgmt-security-group', default='trove-mgmt',
                            help='Management security group '
                                 '(default: trove-mgmt)')
        parser.add_argument(
            '--host-port', metavar='<name>', default='',
            help="This host's own port on the management network, plugged "
                 'into --host-bridge; guests reach RabbitMQ at its address '
                 '(default: none)')
        parser.add_argument('--host-bridge', default='br-int',
                            help='OVS bridge of that port (default: br-int)')
        parser.add_argument('--keypair-name', default='trove-mgmt',
                            help='Keypair of the Trove service user')
        parser.add_argument('--public-key-file', metavar='<path>',
                            help='OpenSSH public key of that keypair '
                                 '(default: no keypair)')
        connection.add_cloud_arguments(parser)
        return parser

    def take_action(self, parsed_args):
        plan = self._plan(parsed_args)
        conn = connection.command_connection(
            parsed_args, admin_for='devstack-extra (images, networks)')
        rows = devstack.extra(conn, plan)
        return COLUMNS, [(r.kind, r.name, r.action, r.detail) for r in rows]

    @staticmethod
    def _plan(parsed_args):
        a = parsed_args
        try:
            timeouts = trove_config.Timeouts(
                **{name: getattr(a, name) for name in TIMEOUTS})
        except ValueError as exc:
            raise errors.UserError(str(exc)) from None
        return devstack.ExtraPlan(
            datastores=tuple(a.datastores),
            config_files={trove_config.TROVE_CONF: a.trove_conf,
                          trove_config.GUESTAGENT_CONF: a.guestagent_conf},
            image=a.image, image_dir=a.image_dir, cache_dir=a.cache_dir,
            guest_os=a.guest_os, guest_release=a.guest_release,
            guest_user=a.guest_user, mirror=a.mirror,
            agent_source=a.guest_agent_source, agent_path=a.guest_agent_path,
            agent_ref=a.guest_agent_ref,
            force_build=a.force_build,
            visibility=a.visibility, config_params_tree=a.config_params_tree,
            trove_manage=a.trove_manage,
            image_source=a.image_source,
            backup_image_source=a.backup_image_source or '',
            registry=a.registry, registry_dir=a.registry_dir,
            registry_push=a.registry_push or None,
            image_overrides=dict(a.datastore_image),
            insecure_registries=a.insecure_registries,
            network_isolation=a.network_isolation,
            volume_support=a.volume_support, volume_type=a.volume_type,
            timeouts=timeouts, host_bridge=a.host_bridge,
            limits={name: getattr(a, name) for name in trove_config.LIMITS
                    if getattr(a, name) is not None},
            wanted=instance_prereqs.Wanted(
                host_port=a.host_port, host=socket.gethostname(),
                project=a.project, network_name=a.mgmt_network,
                subnet_name=a.mgmt_subnet, cidr=a.mgmt_subnet_range,
                physical_network=a.mgmt_physical_network,
                gateway=a.mgmt_gateway, shared=a.mgmt_shared,
                security_group=a.mgmt_security_group,
                keypair=a.keypair_name,
                public_key=keypair.read_public_key(a.public_key_file)
                if a.public_key_file else ''))
