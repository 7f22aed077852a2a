"""waiting.retry: a call tried again while it raises what it is told to."""

import pytest

from trovestack.common import waiting


class Refused(Exception):
    pass


def test_retry_returns_an_empty_answer_at_once(monkeypatch):
    monkeypatch.setattr(waiting.time, 'sleep', lambda s: None)
    calls = []

    def call():
        calls.append(1)
        if len(calls) < 3:
            raise Refused(f'try {len(calls)}')
        return ''

    assert waiting.retry('x', call, 60, retry_on=Refused) == ''
    assert len(calls) == 3


def test_retry_raises_the_last_error_after_the_timeout(monkeypatch):
    clock = iter(range(0, 1000, 10))
    monkeypatch.setattr(waiting.time, 'monotonic', lambda: next(clock))
    monkeypatch.setattr(waiting.time, 'sleep', lambda s: None)
    seen = []

    def call():
        seen.append(len(seen))
        raise Refused(f'try {len(seen)}')

    with pytest.raises(Refused) as info:
        waiting.retry('x', call, 25, retry_on=Refused)
    # Tried until the deadline, then the last refusal, not the first.
    assert len(seen) > 1
    assert str(info.value) == f'try {len(seen)}'


def test_retry_lets_other_errors_through():
    def call():
        raise KeyError('not retried')

    with pytest.raises(KeyError):
        waiting.retry('x', call, 60, retry_on=Refused)
