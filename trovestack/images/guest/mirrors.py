"""Find the distribution mirrors the host's apt already uses."""

import pathlib
from collections.abc import Iterable
from collections.abc import Iterator
from collections.abc import Sequence

from trovestack.images.guest import errors
from trovestack.images.guest import plugins

APT_SOURCES = pathlib.Path('/etc/apt/sources.list')
APT_SOURCES_DIR = pathlib.Path('/etc/apt/sources.list.d')


def _one_line_entries(text: str) -> Iterator[tuple[str, list[str]]]:
    for line in text.splitlines():
        words = line.split('#', 1)[0].split()
        if len(words) < 3 or words[0] != 'deb':
            continue
        if words[1].startswith('['):
            while words and not words[0].endswith(']'):
                words.pop(0)
            words = ['deb'] + words[1:]
            if len(words) < 3:
                continue
        yield words[1], [words[2]]


def _deb822_entries(text: str) -> Iterator[tuple[str, list[str]]]:
    for stanza in text.split('\n\n'):
        fields = {}
        for line in stanza.splitlines():
            if line.startswith('#') or ':' not in line or line[:1].isspace():
                continue
            key, value = line.split(':', 1)
            fields[key.strip().lower()] = value.split()
        if 'deb' not in fields.get('types', []):
            continue
        if fields.get('enabled', ['yes'])[0].lower() == 'no':
            continue
        for uri in fields.get('uris', []):
            yield uri, fields.get('suites', [])


def apt_entries(
        sources: pathlib.Path = APT_SOURCES,
        sources_dir: pathlib.Path = APT_SOURCES_DIR,
) -> list[tuple[str, list[str]]]:
    """(uri, suites) for every enabled deb source of the host."""
    files = [pathlib.Path(sources)] if pathlib.Path(sources).exists() else []
    if pathlib.Path(sources_dir).is_dir():
        files += sorted(pathlib.Path(sources_dir).glob('*.list'))
        files += sorted(pathlib.Path(sources_dir).glob('*.sources'))
    entries: list[tuple[str, list[str]]] = []
    for path in files:
        text = path.read_text()
        if path.suffix == '.sources':
            parse = _deb822_entries
        else:
            parse = _one_line_entries
        entries.extend(parse(text))
    return entries


def find_mirrors(
        guest_os: plugins.GuestOSPlugin,
        entries: Iterable[tuple[str, Sequence[str]]],
) -> tuple[str | None, str | None]:
    """(archive mirror, security mirror) for ``guest_os`` from apt entries.

    An entry belongs to the distribution when one of its suites is a release
    the plugin knows (``bookworm``, ``bookworm-updates``...). The security
    mirror is the entry with a ``-security`` suite, if any.
    """
    archive = security = None
    for uri, suites in entries:
        releases = {suite.split('-', 1)[0] for suite in suites}
        if not releases & set(guest_os.releases):
            continue
        uri = uri.rstrip('/')
        if any(suite.endswith('-security') for suite in suites):
            security = security or uri
        else:
            archive = archive or uri
    return archive, security


def resolve(
        guest_os: plugins.GuestOSPlugin, mirror: str | None = None,
        security_mirror: str | None = None,
        entries: Iterable[tuple[str, Sequence[str]]] | None = None,
) -> tuple[str, str | None]:
    """Mirrors to pass to DIB: explicit options win, then apt's sources.

    With only --mirror given, the security mirror is its sibling
    ``<archive>-security`` directory on the same host.
    """
    if mirror is None:
        mirror, found_security = find_mirrors(
            guest_os, apt_entries() if entries is None else entries)
        security_mirror = security_mirror or found_security
    if not mirror:
        raise errors.BuildError(
            'No %s mirror found in the host apt sources; pass --mirror URL '
            '(upstream: %s)' % (guest_os.name, guest_os.upstream_mirror))
    mirror = mirror.rstrip('/')
    if guest_os.security_mirror_env and not security_mirror:
        security_mirror = '%s/%s-security' % (mirror.rsplit('/', 1)[0],
                                              guest_os.archive_name)
    return mirror, security_mirror
