"""Environment names."""

import pytest

from trovestack.common.errors import UserError
from trovestack.devstack_env import layout


@pytest.mark.parametrize('name', ['devstack', 'a', 'ci2'])
def test_good_names(name):
    assert layout.check_name(name) == name


@pytest.mark.parametrize('name', ['', 'Dev', '1abc', 'a-b', 'x' * 13,
                                  '../etc'])
def test_bad_names(name):
    with pytest.raises(UserError, match='environment name'):
        layout.check_name(name)
