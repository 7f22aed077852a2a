"""trovestack kick-start: a sample local.conf, then devstack's stack.sh."""

import logging
import sys

from cliff import lister

from trovestack.orchestration import kickstart

LOG = logging.getLogger(__name__)


class KickStart(lister.Lister):
    _description = ('Write a devstack local.conf from samples/localrc/'
                    '<datastore> with the trovestack plugin enabled, then '
                    'run stack.sh (its output goes to stderr)')

    headers = ('Step', 'Path', 'Action', 'Detail')

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument(
            'datastore', metavar='<datastore>',
            help='Datastore whose sample to use; the samples are the files '
                 f'in {kickstart.SAMPLES_DIR}')
        parser.add_argument(
            '--devstack-dir', metavar='<dir>', required=True,
            help='devstack checkout (must hold stack.sh and functions-common)')
        parser.add_argument(
            '--plugin-repo', metavar='<url-or-path>',
            default=str(kickstart.REPO_ROOT),
            help='Git URL or path devstack clones the plugin from '
                 '(default: this checkout, %(default)s; devstack clones its '
                 'committed state)')
        parser.add_argument(
            '--plugin-ref', metavar='<ref>',
            help='Branch, tag or commit of the plugin (default: the branch '
                 'checked out in --plugin-repo when it is this checkout, '
                 "else devstack's default)")
        parser.add_argument(
            '--no-run', action='store_true',
            help='Write local.conf but do not run stack.sh')
        parser.add_argument(
            '--dry-run', action='store_true',
            help='Show what would be written and run, change nothing')
        return parser

    def take_action(self, parsed_args):
        # Keep stdout for our table: stack.sh talks on stderr.
        rows = kickstart.kick_start(
            parsed_args.datastore, parsed_args.devstack_dir,
            plugin_repo=parsed_args.plugin_repo,
            plugin_ref=parsed_args.plugin_ref, run=not parsed_args.no_run,
            dry_run=parsed_args.dry_run, stack_stdout=sys.stderr)
        return self.headers, [(row.kind, row.name, row.action, row.detail)
                              for row in rows]
