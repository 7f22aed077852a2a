"""``trovestack instance up|down|breakdown|sync-agent|connect``: one Trove
instance by name.

The work is trovestack.trove.instances' (ensure_instance,
delete_instance), trovestack.trove.boot_timeline's (where the time went),
trovestack.trove.agent_sync's (sync_agent) and
trovestack.trove.database_client's (the datastore's client against the
instance); these commands parse, call and format.  Progress goes to stderr; a
failure is its one line, then the diagnostics that explain it.
"""

import os
import sys

from cliff import columns
from cliff import command
from cliff import show

from trovestack.cloud import layout
from trovestack.cloud.compute import cloud as compute_cloud
from trovestack.commands import cliapp
from trovestack.common import connection
from trovestack.testenv import datastores
from trovestack.trove import agent_sync
from trovestack.trove import boot_timeline
from trovestack.trove import database_client
from trovestack.trove import instances

DEFAULT_NAME = 'demo'
DEFAULT_SIZE = 1
UP_COLUMNS = ('name', 'id', 'status', 'datastore', 'version', 'addresses',
              'created', 'timeline')
UP_HEADERS = ('Name', 'ID', 'Status', 'Datastore', 'Version', 'Addresses',
              'Created', 'Timeline')
DOWN_HEADERS = ('Name', 'ID', 'Action', 'Detail')


class _Addresses(columns.FormattableColumn):
    def human_readable(self):
        return ', '.join(self._value)


class _Timeline(columns.FormattableColumn):
    def human_readable(self):
        return ', '.join(f'{stage} {seconds} s'
                         for stage, seconds in self._value.items())


class _Breakdown(columns.FormattableColumn):
    """A :class:`boot_timeline.Breakdown`: its text in a table, its events
    and notes as data."""

    def human_readable(self):
        return self._value.text()

    def machine_readable(self):
        return self._value.as_dict()


FORMATTERS = {'addresses': _Addresses, 'timeline': _Timeline,
              'breakdown': _Breakdown}
# Seconds between looks at an instance whose breakdown is wanted (its
# ACTIVE is then seen within them).
BREAKDOWN_INTERVAL = 2


def _add_state_dir(parser, what):
    parser.add_argument(
        '--state-dir', metavar='<dir>', default=None,
        help=f'The compute cloud\'s state directory, {what} (default: '
             '$TROVESTACK_STATE_DIR, else $XDG_STATE_HOME/trovestack/cloud)')


def _add_name(parser):
    parser.add_argument(
        'name', metavar='<name>', nargs='?', default=DEFAULT_NAME,
        help=f'Instance name (default: {DEFAULT_NAME})')


def _compute_access(state_dir):
    return boot_timeline.ComputeAccess.of(
        state_dir or layout.default_state_dir())


def _size(value):
    try:
        size = int(value)
    except ValueError:
        size = -1
    if size < 0:
        raise ValueError(f'{value!r} is not a whole number of GB (0: no '
                         'volume)')
    return size


class _InstanceCommand(show.ShowOne):
    """The instance's name, a timeout and the cloud; progress lines to
    stderr (not with -q)."""

    timeout: int | None = None
    timeout_help = ''

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        _add_name(parser)
        parser.add_argument(
            '--timeout', metavar='<seconds>', type=cliapp.positive_int,
            default=self.timeout,
            help=f'{self.timeout_help} (default: {self.timeout})')
        connection.add_cloud_arguments(parser)
        return parser

    def _progress(self, message):
        if self.app.options.verbose_level >= 1:
            print(message, file=sys.stderr, flush=True)


class InstanceUp(_InstanceCommand):
    timeout = instances.DEFAULT_TIMEOUT
    timeout_help = ('Give up waiting for ACTIVE after this long, with the '
                    'diagnostics; without KVM an instance takes minutes')
    _description = (
        'Create a Trove instance and wait until it is ACTIVE, saying each '
        'status it shows; an instance of that name that is there already '
        'is waited for or shown, never made twice; one in ERROR is '
        'reported with its fault and left for "instance down"')

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument(
            '--datastore', metavar='<datastore>[:<version>]',
            type=cliapp.argument_type(datastores.parse_datastore_arg),
            help='Datastore and version (default: the cloud\'s default '
                 'datastore, the only one with a default version or else '
                 'Trove\'s default_datastore; the version defaults to the '
                 'datastore\'s default version)')
        parser.add_argument(
            '--flavor', metavar='<flavor>',
            default=instances.DEFAULT_FLAVOR,
            help=f'Flavor name or id (default: {instances.DEFAULT_FLAVOR}, '
                 'a test flavor "trovestack flavors" makes)')
        parser.add_argument(
            '--size', metavar='<GB>', type=cliapp.argument_type(_size),
            default=DEFAULT_SIZE,
            help='Size of the data volume; 0: no volume, for a Trove whose '
                 f'volume support is off (default: {DEFAULT_SIZE})')
        parser.add_argument(
            '--nic', metavar='<network>', action='append', dest='nics',
            help='Network (name or id) to attach besides Trove\'s '
                 'management network, repeatable (default: '
                 f'"{instances.SHARED_NETWORK}" when the cloud has it)')
        parser.add_argument(
            '--backup', metavar='<backup>',
            help='Restore this Trove backup (name or id) into the new '
                 'instance (default: an empty one)')
        parser.add_argument(
            '--service-log', metavar='<file>', action='append',
            dest='logs', default=[],
            help='Service log whose tail a failure shows (e.g. '
                 'trove-taskmanager\'s), repeatable (default: none)')
        parser.add_argument(
            '--instances-dir', metavar='<dir>', default='',
            help='nova-compute\'s instances_path on this machine, whose '
                 '<server>/console.log a failure shows (default: the '
                 'console through the API only)')
        parser.add_argument(
            '--breakdown', action='store_true',
            help='Once it is ACTIVE, show where the time went, from Trove\'s '
                 'create call on: Trove\'s statuses, nova\'s build, and on '
                 'the local compute cloud its serial console (watched as '
                 'it boots) and the guest\'s own timeline (kernel, systemd, '
                 'cloud-init, guest agent, database container), read over '
                 'SSH; "instance breakdown" shows it later')
        _add_state_dir(parser, 'whose console and guest --breakdown reads')
        return parser

    def take_action(self, parsed_args):
        datastore, version = parsed_args.datastore or (None, None)
        conn = connection.connect_from_args(parsed_args)
        tracker = instances.Tracker(
            conn, parsed_args.name, progress=self._progress,
            evidence=instances.Evidence(
                logs=tuple(parsed_args.logs),
                instances_dir=parsed_args.instances_dir),
            interval=(BREAKDOWN_INTERVAL if parsed_args.breakdown
                      else instances.INTERVAL))
        create = dict(datastore=datastore, version=version,
                      flavor=parsed_args.flavor, nics=parsed_args.nics,
                      volume_size=parsed_args.size or None,
                      backup=parsed_args.backup, timeout=parsed_args.timeout)
        headers = UP_HEADERS
        breakdown = None
        if parsed_args.breakdown:
            result, breakdown = boot_timeline.ensure_with_breakdown(
                conn, parsed_args.name, tracker=tracker,
                access=_compute_access(parsed_args.state_dir), **create)
            headers += ('Breakdown',)
        else:
            result = instances.ensure_instance(conn, parsed_args.name,
                                               tracker=tracker, **create)
        values = {column: getattr(result, column) for column in UP_COLUMNS}
        if breakdown is not None:
            values['breakdown'] = breakdown
        name = parsed_args.name
        self._progress(
            f'{name}: its database, once it has a user ("openstack database '
            f'user create {name} <user> <password> --databases <db>"): '
            f'"trovestack instance connect {name}" (the local compute '
            'cloud; elsewhere its address with the datastore\'s client)')
        return headers, tuple(
            FORMATTERS[column](value) if column in FORMATTERS else value
            for column, value in values.items())


class InstanceBreakdown(_InstanceCommand):
    _description = (
        'Show where an instance\'s time went from its creation (Trove\'s '
        'created time) to now: nova\'s build and, on the local compute '
        'cloud, the taskmanager\'s log and the guest\'s own timeline '
        '(kernel, systemd, cloud-init, guest agent, database container) '
        'read over SSH.  "instance up --breakdown" also watches the '
        'console and Trove\'s statuses as it boots')

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        _add_state_dir(parser, 'whose guest is read')
        return parser

    def take_action(self, parsed_args):
        conn = connection.connect_from_args(parsed_args)
        breakdown = boot_timeline.breakdown_of(
            conn, parsed_args.name,
            access=_compute_access(parsed_args.state_dir))
        return ('Name', 'ID', 'Breakdown'), (
            parsed_args.name, breakdown.instance_id, _Breakdown(breakdown))


class InstanceDown(_InstanceCommand):
    timeout = instances.DELETE_TIMEOUT
    timeout_help = 'Give up waiting for it to go after this long'
    _description = ('Delete the Trove instance of that name (its status '
                    'reset first when stuck in BUILD or ERROR) and wait '
                    'until it, its nova server and its ports are gone; '
                    'nothing to do when there is none')

    def take_action(self, parsed_args):
        conn = connection.connect_from_args(parsed_args)
        row = instances.delete_instance(
            conn, parsed_args.name, timeout=parsed_args.timeout,
            progress=self._progress)
        return DOWN_HEADERS, (row.name, row.id, row.action, row.detail)


SYNC_COLUMNS = ('name', 'id', 'address', 'source', 'package_dir',
                'previous', 'files', 'bytes', 'answered_by', 'seconds',
                'timeline')
SYNC_HEADERS = ('Name', 'ID', 'Address', 'Source', 'Package', 'Previous',
                'Files', 'Bytes', 'Answered by', 'Seconds', 'Timeline')
SYNC_FORMATTERS = {'seconds': _Timeline, 'timeline': _Timeline}


class InstanceSyncAgent(_InstanceCommand):
    timeout = agent_sync.DEFAULT_TIMEOUT
    timeout_help = ('Give up waiting for the restarted agent to answer '
                    'after this long, with its journal')
    _description = (
        'Copy a Trove tree\'s guest agent into a running instance of the '
        'local compute cloud (over SSH on the management network, with the '
        'cloud\'s key) and restart it; done when the new agent answers '
        'Trove\'s database list on the instance.  The tree is checked '
        'first (a module that does not compile: nothing is copied); the '
        'package is swapped in at once, the replaced one kept for '
        '--restore; an agent that does not come back is reported with its '
        'journal')

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument(
            '--source', metavar='<dir>', default=None,
            help='Trove source tree whose agent to sync (default: the tree '
                 'the cloud runs, "cloud up --trove-source")')
        parser.add_argument(
            '--heartbeat', action='store_true',
            help='Also wait for the new agent\'s first heartbeat as '
                 'trove-conductor records it (report_interval, 30 s, after '
                 'its start)')
        parser.add_argument(
            '--restore', action='store_true',
            help='Put back the agent the last sync replaced (the two swap '
                 'places) and restart it')
        _add_state_dir(parser, 'whose guest is synced')
        return parser

    def take_action(self, parsed_args):
        conn = (connection.connect_from_args(parsed_args)
                if parsed_args.os_cloud else None)
        if parsed_args.restore:
            seconds = agent_sync.restore_agent(
                parsed_args.name, state_dir=parsed_args.state_dir,
                conn=conn, timeout=parsed_args.timeout,
                progress=self._progress)
            return ('Name', 'Action', 'Seconds'), (
                parsed_args.name, 'restored', _Timeline(seconds))
        result = agent_sync.sync_agent(
            parsed_args.name, state_dir=parsed_args.state_dir,
            source=parsed_args.source, conn=conn,
            timeout=parsed_args.timeout, heartbeat=parsed_args.heartbeat,
            progress=self._progress)
        return SYNC_HEADERS, tuple(
            SYNC_FORMATTERS[column](getattr(result, column))
            if column in SYNC_FORMATTERS else getattr(result, column)
            for column in SYNC_COLUMNS)


def _with_pass_through(parser, dest):
    """``parser``, made to give everything after the first "--" to
    ``dest`` as it is (argparse alone drops "--" between options and
    positionals it has already consumed)."""
    parse = parser.parse_known_args

    def parse_known_args(args=None, namespace=None):
        args = list(sys.argv[1:] if args is None else args)
        rest = []
        if '--' in args:
            at = args.index('--')
            args, rest = args[:at], args[at + 1:]
        parsed, unknown = parse(args, namespace)
        setattr(parsed, dest, [*getattr(parsed, dest, []), *rest])
        return parsed, unknown

    parser.parse_known_args = parse_known_args
    return parser


class InstanceConnect(command.Command):
    _description = (
        'Open the datastore\'s own client (mariadb, psql) against an '
        'instance of the local compute cloud, inside the cloud\'s network '
        'namespace, as a person on a devstack host would: on its floating '
        'IP when it has one, else on its fixed address on the users\' '
        'network.  The password comes from --password-file, from $'
        + database_client.PASSWORD_ENV + ' or from the client\'s prompt; it '
        'is never printed.  Arguments after "--" go to the client '
        '(mariadb -e \'SELECT 1\', psql -c \'SELECT 1\'); the exit code is '
        'the client\'s')

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        _add_name(parser)
        parser.add_argument(
            '--user', metavar='<user>',
            help='Database user (default: the instance\'s only user, as '
                 '"openstack database user list" shows them)')
        parser.add_argument(
            '--database', metavar='<database>',
            help='Database to open (default: the user\'s only database; '
                 'PostgreSQL: else "postgres")')
        parser.add_argument(
            '--address', choices=database_client.ADDRESS_KINDS,
            default=None,
            help='Which address to connect to (default: floating when the '
                 'instance has one, else fixed)')
        parser.add_argument(
            '--password-file', metavar='<file>',
            help='File whose first line is the password')
        _add_state_dir(parser, 'whose namespace reaches the instance')
        connection.add_cloud_arguments(parser)
        parser.add_argument(
            'client_args', metavar='-- <client arguments>', nargs='*',
            help='Passed to the client as they are')
        return _with_pass_through(parser, 'client_args')

    def take_action(self, parsed_args):
        namespace = compute_cloud.namespace_of(
            parsed_args.state_dir or layout.default_state_dir())
        conn = connection.connect_from_args(parsed_args)
        opened = database_client.session(
            connection.trove_client(conn), namespace, parsed_args.name,
            user=parsed_args.user, database=parsed_args.database,
            address_kind=parsed_args.address,
            password_file=parsed_args.password_file,
            extra=parsed_args.client_args,
            interactive=sys.stdin.isatty())
        if self.app.options.verbose_level >= 1:
            print(f'Connecting: {opened.describe()}', file=sys.stderr,
                  flush=True)
        sys.stdout.flush()
        os.execvpe(opened.argv[0], opened.argv,
                   {**os.environ, **opened.env})
