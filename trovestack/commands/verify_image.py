"""trovestack verify-image: boot a guest image through Trove's prepare."""

import sys

from cliff import lister

from trovestack.commands import cliapp
from trovestack.common.errors import UserError
from trovestack.images.verify import run
from trovestack.testenv import datastores as testenv_datastores


def _datastore_with_version(value):
    name, version = testenv_datastores.parse_datastore_arg(value)
    if not version:
        raise ValueError(f'{value!r}: give <datastore>:<version>, '
                         'e.g. mariadb:11.8')
    return name, version


class VerifyImage(lister.Lister):
    _description = (
        'Boot a guest image under qemu in a network namespace of its own, '
        'with a config drive carrying what Trove injects and a real '
        'RabbitMQ; cast prepare as trove-taskmanager does and wait for the '
        'guest agent to report the database ACTIVE, then create and list a '
        'database and a user through the guest API. Prints the timeline; '
        'exits non-zero naming the stage that never happened')

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument('image', metavar='<image>',
                            help='Guest image file (qcow2 or raw)')
        parser.add_argument(
            '--datastore', metavar='<datastore>:<version>', required=True,
            type=cliapp.argument_type(_datastore_with_version),
            help='Datastore and version to prepare, e.g. mariadb:11.8')
        parser.add_argument(
            '--timeout', metavar='<seconds>', type=cliapp.positive_int,
            default=1800,
            help='Give up after this long, naming the stage that never '
                 'happened (default: 1800; a TCG boot alone takes ~3 min)')
        parser.add_argument(
            '--registry', action='store_true',
            help='Deliver the datastore image through a registry started '
                 'in the namespace (the image built by '
                 'build-datastore-image is pushed to it) instead of the '
                 'copy embedded in the guest image (default: embedded)')
        parser.add_argument(
            '--memory', metavar='<MiB>', type=cliapp.positive_int,
            default=1536, help='Guest memory (default: 1536)')
        parser.add_argument(
            '--cpus', metavar='<count>', type=cliapp.positive_int,
            default=run.GUEST_CPUS,
            help='Guest vCPUs (default: %(default)s, as the compute '
                 "cloud's d3 flavor)")
        parser.add_argument(
            '--agent-start-grace', metavar='<seconds>',
            type=cliapp.positive_int, default=int(run.AGENT_START_GRACE),
            help='Fail when the guest agent has written no log line this '
                 'long after cloud-init finished (the boot releases it '
                 'right after cloud-init; default: %(default)s)')
        parser.add_argument(
            '--disable-guest-agent', action='store_true',
            help='Mask the guest agent through user-data before it starts, '
                 'to see what a broken image reports')
        parser.add_argument(
            '--work-dir', metavar='<dir>',
            help='Keep the console log, config drive and logs here '
                 '(default: a temporary directory, removed on success)')
        return parser

    def take_action(self, parsed_args):
        datastore, version = parsed_args.datastore
        result = run.verify_image(
            parsed_args.image, datastore, version,
            timeout=parsed_args.timeout, use_registry=parsed_args.registry,
            disable_agent=parsed_args.disable_guest_agent,
            memory_mb=parsed_args.memory, cpus=parsed_args.cpus,
            work_dir=parsed_args.work_dir,
            progress=self._progress,
            agent_start_grace=parsed_args.agent_start_grace)
        if not result.ok:
            self._report_failure(result)
            raise UserError('%s:%s on %s: stage "%s" never happened (%s)' % (
                datastore, version, result.image.name, result.failed_stage,
                result.reason))
        return (('Stage', 'Seconds', 'Detail'),
                [(s.name, s.seconds, s.detail) for s in result.stages])

    def _progress(self, message):
        if self.app.options.verbose_level > 0:
            sys.stderr.write(message + '\n')
            sys.stderr.flush()

    def _report_failure(self, result):
        err = sys.stderr
        err.write('Timeline (seconds since qemu started):\n')
        for stage in result.stages:
            at = '%7.1f' % stage.seconds if stage.seconds is not None else (
                '      -')
            err.write('  %s  %s %s\n' % (at, stage.name, stage.detail))
        err.write('Guest agent log (last %d lines):\n' % len(
            result.agent_log_tail))
        for line in result.agent_log_tail or ['  (none: the agent wrote '
                                              'nothing)']:
            err.write('  | %s\n' % line)
        err.write('Serial console (last %d lines):\n' % len(
            result.console_tail))
        for line in result.console_tail:
            err.write('  | %s\n' % line)
        if result.work_dir:
            err.write('Console log, config drive and logs kept in %s\n'
                      % result.work_dir)
