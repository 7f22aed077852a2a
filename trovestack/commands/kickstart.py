"""trovestack kick-start: a sample local.conf, then devstack's stack.sh."""

import logging
import sys

from cliff import lister
from osc_lib import exceptions

from trovestack import kickstart

LOG = logging.getLogger(__name__)


class KickStart(lister.Lister):
    _description = ('Write a devstack local.conf from samples/localrc/'
                    '<datastore> with the trovestack plugin enabled, then '
                    'run stack.sh (its output goes to stderr)')

    columns = ('step', 'path', 'action', 'detail')
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
        try:
            devstack_dir = kickstart.check_devstack_dir(
                parsed_args.devstack_dir)
            sample = kickstart.find_sample(parsed_args.datastore)
            ref = parsed_args.plugin_ref
            if ref is None and parsed_args.plugin_repo == str(
                    kickstart.REPO_ROOT):
                ref = kickstart.current_branch()
            content = kickstart.render_local_conf(
                sample.read_text(), sample_name=str(sample),
                plugin=kickstart.plugin_name(), repo=parsed_args.plugin_repo,
                ref=ref)
            steps = kickstart.write_local_conf(devstack_dir, content,
                                               dry_run=parsed_args.dry_run)
        except (kickstart.KickStartError, OSError) as exc:
            raise exceptions.CommandError(str(exc)) from exc
        stack = str(devstack_dir / 'stack.sh')
        if parsed_args.dry_run:
            steps.append(kickstart.Step('stack.sh', stack, 'skipped' if
                                        parsed_args.no_run else 'would-run'))
        elif parsed_args.no_run:
            steps.append(kickstart.Step('stack.sh', stack, 'skipped',
                                        '--no-run'))
        else:
            # Keep stdout for our table: stack.sh talks on stderr.
            status = kickstart.run_stack(devstack_dir, stdout=sys.stderr)
            if status != 0:
                raise exceptions.CommandError(
                    f'stack.sh in {devstack_dir} failed with exit status '
                    f'{status}; local.conf was written from {sample}')
            steps.append(kickstart.Step('stack.sh', stack, 'ran',
                                        'exit status 0'))
        return self.headers, [tuple(getattr(step, column)
                                    for column in self.columns)
                              for step in steps]
