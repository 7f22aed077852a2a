import pytest

from trovestack.images.guest import errors
from trovestack.images.guest import guest_os
from trovestack.images.guest import mirrors

DEB822 = """Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main

Types: deb
URIs: http://mirror.example/debian-security/
Suites: bookworm-security
Components: main

Types: deb
URIs: https://other.example/node
Suites: nodistro
Enabled: no
"""


def test_deb822_and_one_line_sources_are_parsed(tmp_path):
    (tmp_path / 'd').mkdir()
    (tmp_path / 'd' / 'debian.sources').write_text(DEB822)
    (tmp_path / 'sources.list').write_text(
        '# comment\ndeb [arch=amd64] http://one.example/debian trixie main\n')
    entries = mirrors.apt_entries(tmp_path / 'sources.list', tmp_path / 'd')
    assert ('http://one.example/debian', ['trixie']) in entries
    assert ('http://mirror.example/debian',
            ['bookworm', 'bookworm-updates']) in entries
    assert all('other.example' not in uri for uri, _ in entries)


def test_find_mirrors_splits_archive_and_security():
    entries = list(mirrors._deb822_entries(DEB822))
    assert mirrors.find_mirrors(guest_os.DEBIAN, entries) == (
        'http://mirror.example/debian', 'http://mirror.example/debian-security')


def test_explicit_mirror_derives_security_mirror():
    assert mirrors.resolve(guest_os.DEBIAN, 'http://m.example/debian',
                           entries=[]) == (
        'http://m.example/debian', 'http://m.example/debian-security')


def test_no_ubuntu_mirror_is_a_clear_error():
    entries = list(mirrors._deb822_entries(DEB822))
    with pytest.raises(errors.BuildError, match='pass --mirror'):
        mirrors.resolve(guest_os.UBUNTU, entries=entries)
