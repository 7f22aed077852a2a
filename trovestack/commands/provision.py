"""``trovestack provision``: the whole chain, in one process.

Guest image (built, or given) -> Glance -> Trove datastore versions (the
first datastore's version becomes its default) -> test flavors -> tempest
and Trove test configuration.  Each step is the same cliff command that
``trovestack <step>`` runs, so there is one implementation of each; every
step converges, so provisioning again changes nothing.

Without ``--os-cloud`` (and without ``$OS_CLOUD``) it provisions the local
control plane, starting it first.
"""

import dataclasses
import functools
import logging
import os
import pathlib

from cliff import lister
from osc_lib import exceptions

from load_image import auth
from trovestack import cliapp
from trovestack.cloud import clouds_yaml
from trovestack.cloud import controlplane
from trovestack.cloud import processes
from trovestack.commands import cloud as cloud_commands
from trovestack.commands import load_image as load_commands
from trovestack.commands import testenv as testenv_commands
from trovestack.imagebuild import commands as build_commands
from trovestack.imagebuild import plugins
from trovestack.testenv import datastores

LOG = logging.getLogger(__name__)
COLUMNS = ('Step', 'Subject', 'Result')


class Provision(lister.Lister):
    _description = ('Provision a cloud for Trove tests: guest image, '
                    'datastore versions, flavors and test configuration '
                    '(the local cloud unless --os-cloud is given)')

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument(
            'datastores', metavar='<datastore>[:<version>]', nargs='+',
            type=cliapp.argument_type(datastores.parse_datastore_arg),
            help='Datastores to register; the version defaults to the image '
                 "builder plugin's default; the first is Trove's default "
                 'datastore for tests')
        parser.add_argument(
            '--image', metavar='<image-file>',
            help='Use this guest image instead of building one '
                 '(default: build with trove-image-builder)')
        parser.add_argument(
            '--mode', choices=('container', 'package'), default='container',
            help='Kind of image to build (default: container: one image '
                 'for every datastore)')
        parser.add_argument(
            '--image-dir', metavar='<dir>',
            help='Where built images go (default: the image builder\'s)')
        parser.add_argument(
            '--tempest-conf', metavar='<path>',
            help='tempest.conf to write or merge into (default: '
                 '<state-dir>/tempest.conf on the local cloud, else '
                 './tempest.conf)')
        parser.add_argument(
            '--trove-test-conf', metavar='<path>',
            help="Trove's JSON test config (default: beside tempest.conf, "
                 'as trove-test.json)')
        parser.add_argument(
            '--dry-run', action='store_true',
            help='Only list the steps, with their equivalent commands')
        cloud_commands.add_state_dir_argument(parser)
        cloud_commands.add_base_port_argument(parser)
        auth.add_cloud_arguments(parser)
        return parser

    def take_action(self, parsed_args):
        steps = list(self._plan(parsed_args))
        context = {'image': parsed_args.image}
        if parsed_args.dry_run:
            context['image'] = context['image'] or '<built image>'
            return COLUMNS, [(step.name, ' '.join(step.argv(context)),
                              'would run') for step in steps]
        rows = []
        if parsed_args.os_cloud is None:
            rows.append(self._start_local_cloud(parsed_args))
        for step in steps:
            argv = step.argv(context)
            if step.name != 'build-image':
                argv += self._cloud_argv(parsed_args)
            LOG.info('provision: trovestack %s', step.name)
            columns, data = self._invoke(step, argv)
            rows.append((step.name, *step.summarise(columns, data, context)))
        return COLUMNS, rows

    # ------------------------------------------------------------- planning
    def _plan(self, parsed_args):
        """The steps, in order; argv of a step is made when it runs."""
        local = parsed_args.os_cloud is None
        targets = [(name, version or self._default_version(name))
                   for name, version in parsed_args.datastores]
        if parsed_args.image is not None and \
                not pathlib.Path(parsed_args.image).is_file():
            raise exceptions.CommandError(
                f'image file {parsed_args.image} does not exist')
        for index, (name, version) in enumerate(targets):
            # A container-mode image serves every datastore; a package-mode
            # image holds one datastore's packages.
            if parsed_args.image is None and (
                    index == 0 or parsed_args.mode == 'package'):
                yield _Step('build-image', build_commands.BuildImage,
                            functools.partial(self._build_argv, parsed_args,
                                              (name, version)),
                            _summarise_build)
            yield _Step('load-image', load_commands.LoadImage,
                        functools.partial(_load_argv, name, version,
                                          default=index == 0),
                        _summarise_load)
        yield _Step('flavors', testenv_commands.CreateFlavors,
                    lambda ctx: [], _summarise_rows)
        tempest_conf = pathlib.Path(parsed_args.tempest_conf or (
            self._state_dir(parsed_args) / 'tempest.conf' if local
            else 'tempest.conf')).absolute()
        trove_conf = parsed_args.trove_test_conf or \
            tempest_conf.with_name('trove-test.json')
        argv = ['--tempest-conf', str(tempest_conf),
                '--trove-test-conf', str(trove_conf)]
        for name, version in targets:
            argv += ['--datastore', f'{name}:{version}']
        yield _Step('test-config', testenv_commands.WriteTestConfig,
                    lambda ctx: list(argv), _summarise_rows)

    @staticmethod
    def _default_version(datastore):
        known = plugins.datastores()
        if datastore not in known:
            raise exceptions.CommandError(
                f'no default version for unknown datastore {datastore!r}; '
                f'give <datastore>:<version> (the image builder knows: '
                f'{", ".join(sorted(known))})')
        return known[datastore].default_version

    @staticmethod
    def _build_argv(parsed_args, target, context):
        argv = ['--datastore', target[0], '--datastore-version', target[1],
                '--mode', parsed_args.mode]
        if parsed_args.image_dir:
            argv += ['--output-dir', parsed_args.image_dir]
        return argv

    @staticmethod
    def _state_dir(parsed_args):
        return controlplane.LocalCloud(parsed_args.state_dir).layout.root

    # ------------------------------------------------------------ execution
    def _start_local_cloud(self, parsed_args):
        cloud = controlplane.LocalCloud(parsed_args.state_dir)
        try:
            cloud.up(base_port=parsed_args.base_port)
        except (controlplane.CloudError, processes.ProcessError) as exc:
            raise exceptions.CommandError(str(exc)) from exc
        os.environ.update(cloud.env())
        parsed_args.os_cloud = clouds_yaml.ADMIN_CLOUD
        return ('cloud up', str(cloud.layout.root), 'running')

    @staticmethod
    def _cloud_argv(parsed_args):
        argv = ['--os-cloud', parsed_args.os_cloud,
                '--api-timeout', str(parsed_args.api_timeout)]
        if parsed_args.os_region_name:
            argv += ['--os-region-name', parsed_args.os_region_name]
        return argv

    def _invoke(self, step, argv):
        """Run a step's cliff command in this process, as the CLI would."""
        command = step.command_class(self.app, None, cmd_name=step.name)
        parser = command.get_parser(f'trovestack {step.name}')
        return command.take_action(parser.parse_args(argv))


@dataclasses.dataclass(frozen=True)
class _Step:
    name: str
    command_class: type
    argv: object
    summarise: object


def _image_name(image):
    """One Glance image per image file, shared by all its datastores."""
    return pathlib.Path(image).name.split('.')[0]


def _load_argv(datastore, version, context, *, default):
    argv = [context['image'], '--datastore', datastore, '--version', version,
            '--image-name', _image_name(context['image'])]
    return argv + ['--default'] if default else argv


def _summarise_build(columns, data, context):
    record = dict(zip(build_commands.RESULT_COLUMNS, data, strict=True))
    context['image'] = str(record['path'])
    return context['image'], ('unchanged, not rebuilt' if record['skipped']
                              else 'built')


def _summarise_load(columns, data, context):
    record = dict(zip(columns, data, strict=True))
    subject = f'{record["datastore"]} {record["version"]}'
    result = (f'image {record["image_action"]} ({record["image_id"]}), '
              f'version {record["version_action"]}')
    if record.get('default'):
        result += ', default'
    return subject, result


def _summarise_rows(columns, rows, context):
    rows = list(rows)
    actions = {}
    action_index = next((i for i, c in enumerate(columns)
                         if c.lower() in ('action', 'result', 'change')),
                        len(columns) - 1)
    for row in rows:
        actions[row[action_index]] = actions.get(row[action_index], 0) + 1
    summary = ', '.join(f'{count} {action}'
                        for action, count in sorted(actions.items()))
    return f'{len(rows)} items', summary or 'nothing to do'
