"""The requirements repository devstack reads, made from this project's
pins: ``upper-constraints.txt`` (every pin, ``name===version``) and
``global-requirements.txt`` (every name, which ``pip_install_gr`` greps).

The pins are constraints.txt's, completed by what the wheelhouse built
for names it does not pin, so that every constraint can be met offline.
"""

import pathlib
import re
from collections.abc import Iterable
from collections.abc import Mapping

_PIN = re.compile(r'^\s*(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)\s*'
                  r'(?:\[[^\]]*\])?\s*===?\s*(?P<version>[^\s;#]+)'
                  r'\s*(?:;\s*(?P<marker>[^#]*?))?\s*(?:#.*)?$')
_WHEEL = re.compile(r'^(?P<name>[^-]+)-(?P<version>[^-]+)-.*\.whl$')
# Names devstack asks pip_install_gr for that need not be pinned.
GR_EXTRA_NAMES = ('pymemcache', 'python-memcached', 'psycopg2',
                  'libvirt-python', 'etcd3gw')


def canonical(name: str) -> str:
    """PEP 503 normalised project name."""
    return re.sub(r'[-_.]+', '-', name).lower()


def parse_pins(text: str) -> dict[str, str]:
    """{canonical name: version} of ``name==version`` lines (markers that
    exclude Python 3.11 on Linux are not evaluated: the line is kept)."""
    pins: dict[str, str] = {}
    for line in text.splitlines():
        match = _PIN.match(line)
        if match:
            pins.setdefault(canonical(match.group('name')),
                            match.group('version'))
    return pins


def wheel_pins(names: Iterable[str]) -> dict[str, str]:
    """{canonical name: version} of wheel file names."""
    pins: dict[str, str] = {}
    for file_name in names:
        match = _WHEEL.match(file_name)
        if match:
            pins[canonical(match.group('name'))] = match.group('version')
    return pins


def upper_constraints(pins: Mapping[str, str],
                      built: Mapping[str, str],
                      drop: Iterable[str] = ()) -> str:
    """upper-constraints.txt: the project's pins, then what was built for
    the names it does not pin; ``drop`` leaves names out."""
    dropped = {canonical(name) for name in drop}
    merged = {**built, **pins}
    lines = [f'{name}==={version}' for name, version in sorted(merged.items())
             if name not in dropped]
    return '\n'.join(lines) + '\n'


def global_requirements(names: Iterable[str]) -> str:
    """global-requirements.txt: one name a line, with a version range that
    admits every version (devstack's pip_install_gr_extras takes what
    follows the name and refuses an empty range)."""
    unique = sorted({canonical(name) for name in [*names, *GR_EXTRA_NAMES]})
    return ''.join(f'{name}>=0\n' for name in unique)


def read_pins(path: pathlib.Path | str) -> dict[str, str]:
    return parse_pins(pathlib.Path(path).read_text())
