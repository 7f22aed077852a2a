"""One bounded wait: poll a condition until it holds, a deadline passes or
the thing waited for is known to have failed."""

import time
from collections.abc import Callable
from typing import TypeVar

_T = TypeVar('_T')


class WaitTimeout(Exception):
    """The condition did not hold in time (``str()`` says what)."""


class WaitFailed(Exception):
    """``failed()`` reported that the condition can no longer hold."""


def wait_for(what: str, ready: Callable[[], _T | None], timeout: float, *,
             interval: float = 0.2,
             failed: Callable[[], str | None] | None = None) -> _T:
    """Call ``ready()`` every ``interval`` seconds until it returns a true
    value, and return that value.

    ``failed()``, when given, is asked before each try: a string it returns
    ends the wait at once with :class:`WaitFailed` (a process that died,
    say).  After ``timeout`` seconds :class:`WaitTimeout` names ``what``.
    """
    deadline = time.monotonic() + timeout
    while True:
        if failed is not None:
            reason = failed()
            if reason:
                raise WaitFailed(reason)
        value = ready()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise WaitTimeout(f'{what}: not within {timeout:g} s')
        time.sleep(interval)


def retry(what: str, call: Callable[[], _T], timeout: float, *,
          retry_on: type[Exception] | tuple[type[Exception], ...],
          interval: float = 0.2) -> _T:
    """``call()`` again every ``interval`` seconds while it raises
    ``retry_on``, and return what it returns (an empty answer too); after
    ``timeout`` seconds the last of those errors is raised."""
    errors: list[Exception] = []

    def attempt() -> tuple[_T] | None:
        try:
            return (call(),)
        except retry_on as exc:
            errors.append(exc)
            return None

    try:
        return wait_for(what, attempt, timeout, interval=interval)[0]
    except WaitTimeout:
        raise errors[-1] from None
