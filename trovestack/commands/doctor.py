"""trovestack doctor (alias status): is this cloud ready for Trove tests?"""

import logging

from cliff import lister

from load_image import auth
from load_image import datastores as ds_registry
from trovestack import cliapp
from trovestack import doctor
from trovestack.testenv import datastores as testenv_datastores
from trovestack.testenv import flavors

LOG = logging.getLogger(__name__)


class CheckCloud(lister.Lister):
    _description = ('Check that a cloud is ready for Trove tests: services, '
                    'guest images, datastores, flavors and tempest config; '
                    'exits non-zero naming what is missing')

    columns = ('check', 'result', 'detail')
    headers = ('Check', 'Result', 'Detail')

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument(
            '--datastore', metavar='<name>[:<version>]', action='append',
            type=cliapp.argument_type(
                testenv_datastores.parse_datastore_arg),
            help='Datastore to check, repeatable; without a version its '
                 'default version is checked (default: every registered '
                 'datastore)')
        parser.add_argument(
            '--tempest-conf', metavar='<path>',
            help='tempest.conf to check for [database] and '
                 '[service_available] trove (default: not checked)')
        parser.add_argument(
            '--flavor-set', choices=flavors.FLAVOR_SETS, default='tempest',
            help='Test flavors that must exist: tempest, redstack or all '
                 '(default: tempest)')
        auth.add_cloud_arguments(parser)
        return parser

    def take_action(self, parsed_args):
        conn = auth.command_connection(parsed_args)
        checks = self._checks(conn, parsed_args)
        self.problems = doctor.problems(checks)
        return self.headers, [tuple(getattr(c, col) for col in self.columns)
                              for c in checks]

    def run(self, parsed_args):
        self.problems = []
        status = super().run(parsed_args)
        if self.problems:
            LOG.error('Not ready for Trove tests: %d check(s) not ok: %s',
                      len(self.problems),
                      '; '.join(f'{c.check}: {c.detail}'
                                for c in self.problems))
            return 1
        return status

    def _checks(self, conn, parsed_args):
        checks = doctor.check_services(conn)
        present = {c.check.split()[-1] for c in checks
                   if c.result == doctor.OK}
        if 'image' in present:
            checks.extend(self._guarded('guest images',
                                        doctor.check_guest_images, conn))
        registered = None
        if {'database', 'image'} <= present:
            registered, datastore_checks = self._datastore_checks(
                conn, parsed_args.datastore)
            checks.extend(datastore_checks)
        else:
            checks.append(doctor.Check(
                'datastores', doctor.MISSING,
                'not checked: needs the database and image services'))
        tempest_flavors = []
        if parsed_args.tempest_conf:
            tempest_flavors = doctor.tempest_flavor_ids(
                parsed_args.tempest_conf)
        if 'compute' in present:
            checks.extend(self._guarded(
                f'flavors {parsed_args.flavor_set}', doctor.check_flavors,
                conn, parsed_args.flavor_set, tempest_flavors))
        else:
            checks.append(doctor.Check(
                f'flavors {parsed_args.flavor_set}', doctor.MISSING,
                'not checked: needs the compute service'))
        if parsed_args.tempest_conf:
            checks.extend(doctor.check_tempest_conf(
                parsed_args.tempest_conf, registered))
        else:
            checks.append(doctor.Check('tempest config', doctor.SKIPPED,
                                       'no --tempest-conf given'))
        return checks

    def _datastore_checks(self, conn, wanted):
        """(registered datastore names, checks)."""
        try:
            if not auth.has_admin_role(conn):
                return None, [doctor.Check(
                    'datastores', doctor.FAILED,
                    'not checked: the management API needs the admin role, '
                    'which these credentials lack')]
            versions = ds_registry.list_versions(auth.trove_client(conn))
        except Exception as exc:  # noqa: BLE001 - reported as a row
            LOG.debug('Datastore check failed', exc_info=True)
            return None, [doctor.Check('datastores', doctor.FAILED,
                                       _one_line(exc, 'Trove'))]
        names = {v.datastore_name for v in versions}
        return names, self._guarded('datastores', doctor.check_datastores,
                                    conn, versions, wanted)

    @staticmethod
    def _guarded(label, function, *args):
        """function(*args); an API failure becomes one failed Check."""
        try:
            return function(*args)
        except Exception as exc:  # noqa: BLE001 - reported as a row
            LOG.debug('Check %s failed', label, exc_info=True)
            return [doctor.Check(label, doctor.FAILED, _one_line(exc))]


def _one_line(exc, where=''):
    text = ' '.join(str(exc).split()) or type(exc).__name__
    return f'{where}: {text}' if where else text
