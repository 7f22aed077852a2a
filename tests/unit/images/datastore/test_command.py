"""trovestack build-datastore-image: parse, call, format."""

import pathlib
import types

import pytest

from trovestack.cloud import registry
from trovestack.commands import datastore_image
from trovestack.images.datastore import builder


def command():
    app = types.SimpleNamespace(options=types.SimpleNamespace(
        verbose_level=0))
    return datastore_image.BuildDatastoreImage(app, None)


def parse(*argv):
    cmd = command()
    return cmd, cmd.get_parser('trovestack build-datastore-image').parse_args(
        list(argv))


IMAGE = builder.DatastoreImage(
    datastore='mariadb', version='11.8',
    path=pathlib.Path('/cache/trovestack-mariadb-11.8.tar'), sha256='ab' * 32,
    repository='trovestack/mariadb', tag='11.8', built=False,
    image_id='sha256:' + 'cd' * 32, size=123, seconds=0.04)


def test_parser_defaults():
    _, args = parse('mariadb:11.8')
    assert args.datastore == ('mariadb', '11.8')
    assert (args.output_dir, args.force, args.push) == (None, False, None)


def test_build_and_push(monkeypatch):
    calls = {}

    def fake_build(name, version, **kwargs):
        calls['build'] = (name, version, kwargs)
        return IMAGE

    def fake_push(path, address, repository, tag):
        calls['push'] = (path, address, repository, tag)
        return registry.PushedImage(f'{address}/{repository}:{tag}',
                                    'sha256:ee')

    monkeypatch.setattr(datastore_image.datastore_images, 'build', fake_build)
    monkeypatch.setattr(datastore_image.registry, 'push', fake_push)
    cmd, args = parse('mariadb:11.8', '--force', '--output-dir', '/o',
                      '--push', '127.0.0.1:5000')
    headers, values = cmd.take_action(args)
    row = dict(zip(datastore_image.COLUMNS, values, strict=True))
    assert calls['build'][:2] == ('mariadb', '11.8')
    assert calls['build'][2]['force'] is True
    assert calls['build'][2]['output_dir'] == '/o'
    assert calls['push'] == (IMAGE.path, '127.0.0.1:5000',
                             'trovestack/mariadb', '11.8')
    assert row['reference'] == 'trovestack/mariadb:11.8'
    assert row['pushed'] == '127.0.0.1:5000/trovestack/mariadb:11.8'
    assert row['built'] is False
    assert len(headers) == len(values)


def test_unknown_version_is_a_user_error():
    cmd, args = parse('postgresql:9.6')
    with pytest.raises(builder.errors.UserError,
                       match='postgresql versions are 15, 17'):
        cmd.take_action(args)
