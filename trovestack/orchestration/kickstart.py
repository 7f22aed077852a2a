"""Turn a samples/localrc file into a devstack local.conf and run stack.sh.

A sample is either a localrc fragment (``KEY=value`` and ``enable_*``
lines) or a whole local.conf with ``[[phase|file]]`` meta sections; both
become a local.conf whose ``[[local|localrc]]`` section enables this
repository as the ``trovestack`` devstack plugin.  An existing local.conf
with other content is moved aside to local.conf.bak (or .bak.N), never
overwritten.
"""

import logging
import pathlib
import re
import subprocess

from trovestack.common import results
from trovestack.common.errors import UserError
from trovestack.common.results import Row

LOG = logging.getLogger(__name__)

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
SAMPLES_DIR = REPO_ROOT / 'samples' / 'localrc'
PLUGIN_SETTINGS = pathlib.Path('devstack') / 'settings'
DEFAULT_PLUGIN_NAME = 'trovestack'
# Files that make a directory a devstack checkout.
DEVSTACK_MARKERS = ('stack.sh', 'functions-common')
LOCALRC_SECTION = ('local', 'localrc')

_META_HEADER = re.compile(r'^\[\[\s*(?P<phase>[^|\]]+?)\s*\|'
                          r'\s*(?P<file>[^\]]+?)\s*\]\]\s*$')
_DEFINE_PLUGIN = re.compile(r'^\s*define_plugin\s+(?P<name>\S+)\s*$',
                            re.MULTILINE)
_SAMPLE_NAME = re.compile(r'^[A-Za-z0-9][A-Za-z0-9_-]*')


class KickStartError(UserError):
    """kick-start cannot go ahead (one line for the user)."""


def available_samples(samples_dir=SAMPLES_DIR):
    """{name: path} of the sample files; the name is the file name up to
    its first dot (mysql.conf -> mysql)."""
    samples = {}
    directory = pathlib.Path(samples_dir)
    if not directory.is_dir():
        return samples
    for path in sorted(directory.iterdir()):
        match = _SAMPLE_NAME.match(path.name)
        if not path.is_file() or not match:
            continue
        if path.name.lower().startswith('readme'):
            continue
        samples.setdefault(match.group(0), path)
    return samples


def find_sample(datastore, samples_dir=SAMPLES_DIR):
    """The sample file for ``datastore``; the error lists the valid ones."""
    samples = available_samples(samples_dir)
    if datastore in samples:
        return samples[datastore]
    valid = ', '.join(sorted(samples)) or f'none (no files in {samples_dir})'
    raise KickStartError(
        f'no sample local.conf for datastore {datastore!r} in '
        f'{samples_dir}; valid datastores: {valid}')


def check_devstack_dir(devstack_dir):
    """The absolute devstack checkout path, or KickStartError."""
    path = pathlib.Path(devstack_dir).expanduser().absolute()
    if not path.is_dir():
        raise KickStartError(f'{path} is not a directory; give the path of '
                             'a devstack checkout')
    missing = [name for name in DEVSTACK_MARKERS
               if not (path / name).is_file()]
    if missing:
        raise KickStartError(
            f'{path} is not a devstack checkout: no {", ".join(missing)} '
            '(git clone https://opendev.org/openstack/devstack)')
    return path


def plugin_name(repo=REPO_ROOT):
    """The name devstack/settings gives the plugin with define_plugin."""
    try:
        text = (pathlib.Path(repo) / PLUGIN_SETTINGS).read_text()
    except OSError:
        return DEFAULT_PLUGIN_NAME
    match = _DEFINE_PLUGIN.search(text)
    return match.group('name') if match else DEFAULT_PLUGIN_NAME


def current_branch(repo=REPO_ROOT):
    """The branch checked out in ``repo``, or None if not a git branch."""
    result = subprocess.run(
        ['git', '-C', str(repo), 'rev-parse', '--abbrev-ref', 'HEAD'],
        capture_output=True, text=True, stdin=subprocess.DEVNULL)
    branch = result.stdout.strip()
    if result.returncode != 0 or branch in ('', 'HEAD'):
        return None
    return branch


def parse_sections(text):
    """(preamble, [((phase, file), [lines])]) in file order.

    The preamble is what comes before the first ``[[phase|file]]`` header;
    a file without headers is all ``[[local|localrc]]``.
    """
    preamble, sections = [], []
    for line in text.splitlines():
        match = _META_HEADER.match(line)
        if match:
            sections.append(((match.group('phase'), match.group('file')), []))
        elif sections:
            sections[-1][1].append(line)
        else:
            preamble.append(line)
    if not sections:
        return [], [(LOCALRC_SECTION, preamble)]
    merged = {}
    for key, lines in sections:
        merged.setdefault(key, []).extend(lines)
    merged.setdefault(LOCALRC_SECTION, [])
    return preamble, list(merged.items())


def render_local_conf(sample_text, *, sample_name, plugin, repo, ref=None):
    """The local.conf for a sample, enabling ``plugin`` from ``repo``.

    The sample's own ``enable_plugin <plugin>`` line is replaced where it
    stands; without one the line ends the localrc section.
    """
    enable = f'enable_plugin {plugin} {repo}' + (f' {ref}' if ref else '')
    own_plugin = re.compile(rf'^\s*enable_plugin\s+{re.escape(plugin)}\s')
    preamble, sections = parse_sections(sample_text)
    out = [f'# Written by "trovestack kick-start" from {sample_name};',
           '# An earlier local.conf is kept as local.conf.bak (or .bak.N).',
           *_strip_blank_edges(preamble)]
    for (phase, target), lines in sections:
        lines = _strip_blank_edges(lines)
        if (phase, target) == LOCALRC_SECTION:
            if any(own_plugin.match(line) for line in lines):
                lines = [enable if own_plugin.match(line) else line
                         for line in lines]
            else:
                lines = [*lines, '', enable] if lines else [enable]
        out += ['', f'[[{phase}|{target}]]', *lines]
    return '\n'.join(out) + '\n'


def _strip_blank_edges(lines):
    start, end = 0, len(lines)
    while start < end and not lines[start].strip():
        start += 1
    while end > start and not lines[end - 1].strip():
        end -= 1
    return lines[start:end]


def backup_path(path):
    """local.conf.bak, or the first free local.conf.bak.N."""
    candidate = path.with_name(path.name + '.bak')
    number = 1
    while candidate.exists():
        candidate = path.with_name(f'{path.name}.bak.{number}')
        number += 1
    return candidate


def write_local_conf(devstack_dir, content, *, dry_run=False):
    """Write local.conf, moving a different existing one aside; [Row]."""
    target = pathlib.Path(devstack_dir) / 'local.conf'
    steps = []
    if target.exists():
        if target.read_text() == content:
            return [Row('local.conf', str(target), results.UNCHANGED)]
        backup = backup_path(target)
        steps.append(Row('backup', str(backup),
                         _done(results.CREATED, dry_run),
                         f'previous {target.name}'))
        if not dry_run:
            LOG.info('Keeping the previous %s as %s', target, backup)
            target.rename(backup)
    steps.append(Row('local.conf', str(target), _done('written', dry_run)))
    if not dry_run:
        target.write_text(content)
    return steps


def _done(action, dry_run):
    return results.planned(action) if dry_run else action


def run_stack(devstack_dir, *, stdout=None):
    """Run devstack's stack.sh in ``devstack_dir``; returns its exit code."""
    script = pathlib.Path(devstack_dir) / 'stack.sh'
    LOG.info('Running %s', script)
    # stdin stays the user's: stack.sh asks for passwords local.conf lacks.
    return subprocess.run(['bash', str(script)], cwd=str(devstack_dir),
                          stdout=stdout).returncode


def kick_start(datastore, devstack_dir, *, plugin_repo=None, plugin_ref=None,
               run=True, dry_run=False, stack_stdout=None):
    """local.conf from the datastore's sample, then stack.sh; [Row].

    ``plugin_repo`` defaults to this checkout, and then ``plugin_ref`` to
    the branch checked out here.
    """
    plugin_repo = plugin_repo or str(REPO_ROOT)
    try:
        devstack_dir = check_devstack_dir(devstack_dir)
        sample = find_sample(datastore)
        if plugin_ref is None and plugin_repo == str(REPO_ROOT):
            plugin_ref = current_branch()
        content = render_local_conf(
            sample.read_text(), sample_name=str(sample),
            plugin=plugin_name(), repo=plugin_repo, ref=plugin_ref)
        rows = write_local_conf(devstack_dir, content, dry_run=dry_run)
    except OSError as exc:
        raise KickStartError(str(exc)) from exc
    stack = str(devstack_dir / 'stack.sh')
    if dry_run:
        rows.append(Row('stack.sh', stack,
                        _done('ran' if run else results.SKIPPED, True)))
    elif not run:
        rows.append(Row('stack.sh', stack, results.SKIPPED, '--no-run'))
    else:
        status = run_stack(devstack_dir, stdout=stack_stdout)
        if status != 0:
            raise KickStartError(
                f'stack.sh in {devstack_dir} failed with exit status '
                f'{status}; local.conf was written from {sample}')
        rows.append(Row('stack.sh', stack, 'ran', 'exit status 0'))
    return rows
