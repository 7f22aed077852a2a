import types

import pytest

from trovestack import testenv
from trovestack.testenv import datastores


def _version(name, version_id):
    return types.SimpleNamespace(name=name, id=version_id, version=name,
                                 image=f'img-{version_id}')


def _trove(catalog):
    """catalog: {name: (default version id or None, [versions])}."""
    stores = [types.SimpleNamespace(name=name, id=f'id-{name}',
                                    default_version=default)
              for name, (default, _) in catalog.items()]
    return types.SimpleNamespace(
        datastores=types.SimpleNamespace(list=lambda: stores),
        datastore_versions=types.SimpleNamespace(
            list=lambda ds_id: catalog[ds_id[3:]][1]))


TROVE = _trove({
    'mysql': ('v2', [_version('5.7', 'v1'), _version('8.4', 'v2')]),
    'redis': (None, [_version('7', 'v3')]),
    'mongodb': (None, [_version('6', 'v4'), _version('7', 'v5')]),
})


def test_parse_datastore_arg():
    assert datastores.parse_datastore_arg('mysql') == ('mysql', None)
    assert datastores.parse_datastore_arg('mysql:8.4') == ('mysql', '8.4')
    with pytest.raises(ValueError):
        datastores.parse_datastore_arg(':8.4')


def test_default_choice_skips_ambiguous():
    choices = datastores.choose(TROVE)
    assert [(c.name, c.version, c.image_id) for c in choices] == [
        ('mysql', '8.4', 'img-v2'), ('redis', '7', 'img-v3')]


def test_explicit_choices():
    choices = datastores.choose(TROVE, [('mysql', '5.7'), ('mongodb', '7')])
    assert [(c.name, c.version_id) for c in choices] == [
        ('mysql', 'v1'), ('mongodb', 'v5')]


@pytest.mark.parametrize('wanted, message', [
    ([('cassandra', None)],
     "datastore 'cassandra' is not registered in Trove "
     r'\(registered: mongodb, mysql, redis\)'),
    ([('mysql', '9.9')], "datastore 'mysql' has no version '9.9'"),
    ([('mongodb', None)], "datastore 'mongodb' has no default version"),
])
def test_bad_choices(wanted, message):
    with pytest.raises(testenv.TestEnvError, match=message):
        datastores.choose(TROVE, wanted)


def test_nothing_registered():
    with pytest.raises(testenv.TestEnvError,
                       match='no datastore is registered'):
        datastores.choose(_trove({}))
