"""trovestack gate-tests / int-tests: trove-tempest-plugin through tempest."""

import logging
import os
import shlex

from cliff import command

from trovestack.commands import cliapp
from trovestack.testenv import tempest_runner

LOG = logging.getLogger(__name__)


class _RunTempest(command.Command):
    """Shared options; subclasses set the default test regex."""

    default_regex: str | None = None

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument(
            '--tempest-conf', metavar='<path>', required=True,
            help='tempest.conf written by "trovestack test-config" (with '
                 '[identity]/[auth] for the cloud); copied into the '
                 'workspace')
        parser.add_argument(
            '--workspace-dir', metavar='<dir>',
            default=str(tempest_runner.default_workspace()),
            help='Tempest workspace, created with "tempest init" when '
                 'missing (default: %(default)s)')
        which = parser.add_mutually_exclusive_group()
        which.add_argument(
            '--regex', metavar='<regex>',
            help=f'Tests to run (default: {self.default_regex})')
        which.add_argument(
            '--profile', choices=sorted(tempest_runner.PROFILES),
            help='Scenario modules to run, for every datastore the '
                 'tempest.conf enables: basic (test_instance_basic), '
                 'backup, replication, actions, update-access, or full '
                 '(all five)')
        parser.add_argument(
            '--datastore', metavar='<datastore>', action='append',
            choices=tempest_runner.DATASTORES, default=[],
            help='With --profile: only the scenario classes of this '
                 'datastore (repeatable; default: every datastore the '
                 'tempest.conf enables)')
        parser.add_argument(
            '--exclude-regex', metavar='<regex>',
            help='Tests to leave out (default: none)')
        how = parser.add_mutually_exclusive_group()
        how.add_argument(
            '--concurrency', metavar='<n>', type=cliapp.positive_int,
            help='Parallel test workers (default: tempest\'s, one per CPU)')
        how.add_argument(
            '--serial', action='store_true',
            help='Run the tests one at a time')
        parser.add_argument(
            '--list-tests', action='store_true',
            help='List the selected tests instead of running them')
        parser.add_argument(
            '--state-dir', metavar='<dir>',
            help='A compute-enabled local cloud (trovestack cloud up '
                 '--compute --state-dir <dir>): run tempest inside its '
                 'network namespace, where instances\' addresses are '
                 'reachable (default: run on the host)')
        parser.add_argument(
            '--service-log', metavar='<file>', action='append',
            dest='logs', default=[],
            help='With --state-dir: a Trove service log whose errors a '
                 'failure shows, repeatable (default: the cloud\'s own '
                 'trove-api, trove-taskmanager and trove-conductor logs)')
        parser.add_argument(
            '--results', metavar='<file>',
            help='Where the run\'s result table goes as JSON (test, '
                 'datastore, result, seconds) (default: '
                 f'<workspace>/{tempest_runner.RESULTS_FILE})')
        parser.add_argument(
            '--dry-run', action='store_true',
            help='Check the config and print the tempest command without '
                 'creating the workspace or running anything')
        return parser

    def take_action(self, parsed_args):
        regex = parsed_args.regex or self.default_regex
        if parsed_args.profile:
            regex = tempest_runner.profile_regex(parsed_args.profile,
                                                 parsed_args.datastore)
        elif parsed_args.datastore:
            raise tempest_runner.TempestError(
                '--datastore narrows a --profile; give one')
        selection = tempest_runner.Selection(
            regex=regex,
            exclude_regex=parsed_args.exclude_regex,
            concurrency=parsed_args.concurrency,
            serial=parsed_args.serial,
            list_tests=parsed_args.list_tests)
        tempest = tempest_runner.find_tempest()
        tempest_runner.check_plugin()
        netns = None
        if parsed_args.state_dir:
            from trovestack.cloud.compute import cloud as compute_cloud
            netns = compute_cloud.namespace_of(parsed_args.state_dir)
        if parsed_args.dry_run:
            tempest_runner.check_config(parsed_args.tempest_conf)
            argv = tempest_runner.run_arguments(
                tempest, parsed_args.workspace_dir, selection, netns=netns)
            self.app.stdout.write(
                f'would run in {parsed_args.workspace_dir}: '
                f'{shlex.join(argv)}\n')
            return 0
        tempest_runner.prepare_workspace(
            parsed_args.workspace_dir, parsed_args.tempest_conf,
            tempest=tempest)
        self.app.stdout.flush()
        status = tempest_runner.run(parsed_args.workspace_dir, selection,
                                    tempest=tempest, netns=netns)
        if not selection.list_tests:
            self._report(parsed_args)
        if status != 0:
            LOG.error('tempest exited with status %d; logs are in %s/logs',
                      status, parsed_args.workspace_dir)
            if netns:
                self._show_guests(parsed_args)
        return status

    def _report(self, parsed_args):
        """The run's result table: printed, and written as JSON."""
        results = tempest_runner.last_results(parsed_args.workspace_dir)
        path = parsed_args.results or os.path.join(
            parsed_args.workspace_dir, tempest_runner.RESULTS_FILE)
        tempest_runner.write_results(path, results)
        if not results:
            return
        width = max(len(result.test) for result in results)
        lines = [f'{"Test":<{width}}  {"Datastore":<10}  {"Result":<7}  '
                 'Seconds']
        lines += [f'{result.test:<{width}}  {result.datastore:<10}  '
                  f'{result.result:<7}  '
                  + ('' if result.seconds is None else f'{result.seconds}')
                  for result in results]
        self.app.stdout.write('\n'.join(lines) + f'\n(results in {path})\n')

    def _show_guests(self, parsed_args):
        """What the compute cloud's guests and Trove's logs show: where a
        failed scenario stopped."""
        from trovestack.trove import guests

        self.app.stderr.write('Evidence from the compute cloud:\n')
        self.app.stderr.write(guests.cloud_report(
            parsed_args.state_dir, parsed_args.logs) + '\n')


class RunGateTests(_RunTempest):
    _description = ('Run the gate subset of trove-tempest-plugin (basic '
                    'instance scenarios) against the configured cloud')

    default_regex = tempest_runner.GATE_REGEX


class RunIntTests(_RunTempest):
    _description = ('Run every trove-tempest-plugin test (instances, '
                    'backups, replication...) against the configured cloud')

    default_regex = tempest_runner.INT_REGEX
