"""Waiting for something to happen: poll a condition with a deadline, never a fixed sleep."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(
    predicate: Callable[[], T],
    *,
    timeout: float = 10.0,
    interval: float = 0.02,
    what: str | Callable[[], str] = "",
    ignoring: tuple[type[BaseException], ...] = (),
) -> T:
    """Poll `predicate()` until it returns something truthy, and return that; fail after `timeout` seconds.

    The failure (an AssertionError) names `what` was awaited (a string, or a function called only then, for
    a message that needs a look at the state) and the last value seen, so a slow machine and a real bug
    read differently. Exceptions of the `ignoring` types count as "not yet" (a server still starting).
    `interval` is the pause between polls; the condition is checked first, so a true one costs nothing.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = predicate()
        except ignoring as exc:
            value = None
            last: object = exc
        else:
            last = value
        if value:
            return value
        if time.monotonic() >= deadline:
            described = what() if callable(what) else what or repr(predicate)
            raise AssertionError(f"not within {timeout:g} s: {described} (last: {last!r})")
        time.sleep(interval)
