"""cliff command ``build-image``, also all of ``trove-image-builder``."""

import logging
import sys

from cliff import show

from trovestack.commands import cliapp
from trovestack.images.guest import builder
from trovestack.images.guest import guest_agent
from trovestack.images.guest import host
from trovestack.images.guest import plugins

LOG = logging.getLogger(__name__)

RESULT_COLUMNS = ('path', 'sha256', 'build_hash', 'skipped', 'log_path',
                  'build_path', 'agent_source')
RESULT_HEADERS = ('Image', 'SHA256', 'Build hash', 'Skipped', 'Log file',
                  'Build path', 'Guest agent')


def describe_plugins():
    """(headers, values) describing every datastore and guest OS plugin."""
    headers, values = [], []
    for name, ds in sorted(plugins.datastores().items()):
        headers.append('datastore %s' % name)
        values.append('versions: %s (default %s)%s'
                      % (', '.join(ds.versions), ds.default_version,
                         '; ' + ds.note if ds.note else ''))
    for name, os_ in sorted(plugins.guest_oses().items()):
        headers.append('guest-os %s' % name)
        values.append('element: %s; releases: %s (default %s)%s'
                      % (os_.dib_element, ', '.join(os_.releases),
                         os_.default_release,
                         '; ' + os_.note if os_.note else ''))
    return tuple(headers), tuple(values)


class BuildImage(show.ShowOne):
    _description = ('Build a Trove guest image with diskimage-builder, or '
                    'skip the build when an identical one exists')

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument(
            '--list', action='store_true',
            help='List the datastore and guest OS plugins and exit')
        parser.add_argument(
            '--datastore', metavar='<datastore>', default='mysql',
            help='Datastore plugin (default: mysql; see --list)')
        parser.add_argument(
            '--datastore-version', metavar='<version>',
            help="Datastore version (default: the plugin's default)")
        parser.add_argument(
            '--guest-os', metavar='<os>', default='debian',
            help='Guest OS plugin (default: debian here because only a '
                 'Debian mirror is reachable; upstream Trove uses ubuntu)')
        parser.add_argument(
            '--guest-release', metavar='<release>',
            help="Guest OS release (default: the plugin's default, bookworm "
                 "for debian, noble for ubuntu)")
        output = parser.add_mutually_exclusive_group()
        output.add_argument(
            '--output', metavar='<file>',
            help='Image file to write (default: a name derived from the '
                 'options, in --output-dir)')
        output.add_argument(
            '--output-dir', metavar='<dir>',
            help='Directory for the image (default: '
                 '~/.cache/trove-image-builder/images)')
        parser.add_argument(
            '--image-format', choices=builder.FORMATS, default='qcow2',
            help='Image file format (default: qcow2; -f/--format is the '
                 'output format of the result, as in every cliff command)')
        parser.add_argument(
            '--arch', choices=builder.ARCHES, default=host.host_arch(),
            help="Guest architecture, as diskimage-builder names it "
                 "(default: this host's, %s; another one needs "
                 "qemu-user-static)" % host.host_arch())
        parser.add_argument(
            '--size', type=cliapp.positive_int, metavar='<GiB>',
            help='Image size in GiB (default: as small as the content)')
        parser.add_argument(
            '--extra-element', metavar='<element>', action='append',
            default=[], help='Add a DIB element (repeatable; elements are '
                             'looked up in integration/elements and '
                             '$ELEMENTS_PATH)')
        parser.add_argument(
            '--embed-datastore-image', metavar='<datastore>:<version>',
            action='append', default=[],
            help='Bake this datastore container image (built by '
                 'build-datastore-image, first if needed) into the image '
                 'and load it at boot, so no registry is needed '
                 '(repeatable; default: none)')
        parser.add_argument(
            '--ssh-key', metavar='<public-key-file>',
            help='Authorise this public key for the guest user (debug '
                 'images; default: no key)')
        parser.add_argument(
            '--guest-user', metavar='<name>', default='trove',
            help='User the guest agent runs as (default: trove)')
        parser.add_argument(
            '--guest-agent-source', choices=guest_agent.SOURCES,
            default=guest_agent.PIP,
            help='Where the guest agent code comes from (default: pip). '
                 'An image built before that differs only in the agent is '
                 'rebuilt from that image in seconds (the agent step)')
        parser.add_argument(
            '--guest-agent-ref', metavar='<ref>',
            help='pip: Trove version (default: %s); git: branch or tag '
                 '(default: %s)' % (guest_agent.DEFAULT_PIP_REF,
                                    guest_agent.DEFAULT_GIT_REF))
        parser.add_argument(
            '--guest-agent-path', metavar='<url-or-dir>',
            help='git: repository URL (default: %s); local: Trove source '
                 'tree' % guest_agent.DEFAULT_GIT_URL)
        parser.add_argument(
            '--base-image', choices=builder.BASE_IMAGES, default='cached',
            help='cached: reuse the debootstrap tarball of an earlier build; '
                 'download: debootstrap afresh from the mirror; local: use '
                 '--base-image-path (default: cached)')
        parser.add_argument(
            '--base-image-path', metavar='<tarball>',
            help='Debootstrap tarball for --base-image local')
        parser.add_argument(
            '--mirror', metavar='<url>',
            help="Distribution mirror passed to DIB (default: found in the "
                 "host's apt sources)")
        parser.add_argument(
            '--security-mirror', metavar='<url>',
            help="Security mirror (default: found in the host's apt "
                 "sources)")
        parser.add_argument(
            '--cache-dir', metavar='<dir>',
            help='Cache for wheelhouses, DIB caches and logs (default: '
                 '$TROVE_IMAGE_BUILDER_CACHE or ~/.cache/trove-image-builder)')
        parser.add_argument(
            '--force', action='store_true',
            help='Build from scratch with diskimage-builder, even when an '
                 'identical image exists or only the guest agent changed')
        parser.add_argument(
            '--debug-trace', action='store_true',
            help='Trace element scripts (DIB_DEBUG_TRACE=1, '
                 'disk-image-create -x)')
        return parser

    def _request(self, parsed_args):
        return cliapp.from_options(
            builder.BuildRequest, parsed_args,
            extra_elements=tuple(parsed_args.extra_element),
            embed_datastore_images=tuple(
                parsed_args.embed_datastore_image),
            agent_source=parsed_args.guest_agent_source,
            agent_ref=parsed_args.guest_agent_ref,
            agent_path=parsed_args.guest_agent_path)

    def _progress(self, message):
        if self.app.options.verbose_level >= 1:
            print(message, file=sys.stderr, flush=True)

    def take_action(self, parsed_args):
        if parsed_args.list:
            return describe_plugins()
        result = builder.build_image(self._request(parsed_args),
                                     progress=self._progress)
        return RESULT_HEADERS, tuple(getattr(result, column)
                                     for column in RESULT_COLUMNS)
