"""The image hash cache: reused only while the file is unchanged."""

import os

import pytest

from load_image import hashcache
from load_image import images


@pytest.fixture(autouse=True)
def cache_home(tmp_path, monkeypatch):
    monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path / 'cache'))
    return tmp_path / 'cache'


def test_miss_then_hit(tmp_path):
    image = tmp_path / 'a.img'
    image.write_bytes(b'x' * 4096)
    assert hashcache.lookup(image) is None
    hashcache.remember(image, 'h256', 'h512')
    assert hashcache.lookup(image) == ('h256', 'h512')


def test_any_write_invalidates(tmp_path):
    image = tmp_path / 'a.img'
    image.write_bytes(b'x' * 4096)
    hashcache.remember(image, 'h256', 'h512')
    stat = image.stat()
    image.write_bytes(b'y' * 4096)
    os.utime(image, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert hashcache.lookup(image) is None


def test_load_image_file_uses_and_fills_the_cache(tmp_path, monkeypatch):
    image = tmp_path / 'a.img'
    image.write_bytes(b'\0' * 65536)
    first = images.load_image_file(image)
    monkeypatch.setattr(images, 'hash_file',
                        lambda *a, **k: pytest.fail('hashed again'))
    second = images.load_image_file(image)
    assert (first.sha256, first.sha512) == (second.sha256, second.sha512)


def test_oldest_entries_are_dropped(tmp_path, monkeypatch):
    monkeypatch.setattr(hashcache, 'MAX_ENTRIES', 2)
    paths = []
    for name in 'abc':
        path = tmp_path / name
        path.write_bytes(name.encode())
        hashcache.remember(path, name, name)
        paths.append(path)
    assert hashcache.lookup(paths[0]) is None
    assert hashcache.lookup(paths[2]) == ('c', 'c')


def test_unwritable_cache_is_not_an_error(tmp_path, cache_home):
    cache_home.mkdir()
    (cache_home / 'trovestack').write_text('a file, not a directory')
    image = tmp_path / 'a.img'
    image.write_bytes(b'x')
    hashcache.remember(image, 'h', 'h')
    assert hashcache.lookup(image) is None
