import pathlib

import pytest

from trovestack.images.guest import errors
from trovestack.images.guest import guest_agent


def test_pip_identity_names_the_version():
    assert guest_agent.source_identity('pip') == 'pip:trove==26.0.0'
    assert guest_agent.source_identity('pip', ref='25.0.0') == (
        'pip:trove==25.0.0')


def test_local_identity_follows_the_tree(tmp_path):
    (tmp_path / 'setup.cfg').write_text('[metadata]\n')
    (tmp_path / 'trove.py').write_text('x = 1\n')
    (tmp_path / '.git').mkdir()
    first = guest_agent.source_identity('local', path=str(tmp_path))
    (tmp_path / '.git' / 'HEAD').write_text('ignored')
    assert guest_agent.source_identity('local', path=str(tmp_path)) == first
    (tmp_path / 'trove.py').write_text('x = 2\n')
    assert guest_agent.source_identity('local', path=str(tmp_path)) != first


def test_local_source_must_be_a_source_tree(tmp_path):
    with pytest.raises(errors.BuildError, match='Trove source tree'):
        guest_agent.source_identity('local', path=str(tmp_path))


def test_wheelhouse_is_prepared_once(tmp_path, monkeypatch):
    calls = []

    def fake_pip(args, log):
        calls.append(args)
        dest = pathlib.Path(args[args.index('--wheel-dir' if 'wheel' in args
                                            else '--dest') + 1])
        (dest / ('w%d.whl' % len(calls))).write_text('')
    monkeypatch.setattr(guest_agent, '_pip', fake_pip)
    with open(tmp_path / 'log', 'w') as log:
        first = guest_agent.prepare('pip', None, None, tmp_path, '3.11', log)
        second = guest_agent.prepare('pip', None, None, tmp_path, '3.11', log)
    assert first == second
    assert len(calls) == 2   # requirements + the trove wheel, once
    assert (first / 'agent.txt').read_text() == 'trove==26.0.0\n'
    assert (first / 'requirements.txt').is_file()
    assert not list(first.parent.glob('.partial-*'))
