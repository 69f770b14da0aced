"""Trying again what may get better: a phone or a bridge that refuses, resets or does not answer a connect
yet, a server that says it is busy.

One policy for ADB connects (adb-shell and the adb server) and for STF's REST calls: exponential backoff
with jitter, bounded by a number of attempts and a total time. What cannot get better (a refused key or
token, an unknown host name, most HTTP 4xx) is for the caller's ``transient`` test to refuse: it is raised
at once. tenacity would do the same, but it is not installed and this is twenty lines.
"""

from __future__ import annotations

import dataclasses
import itertools
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Backoff:
    """Up to ``attempts`` tries; waits from ``first_s`` growing by ``factor`` to at most ``cap_s``; no new try
    that would start more than ``total_s`` after the first (a try under way is not cut short)."""

    attempts: int = 6
    total_s: float = 10.0
    first_s: float = 0.25
    factor: float = 2.0
    cap_s: float = 4.0

    def delay(self, retry: int, draw: Callable[[], float] = random.random) -> float:
        """The wait before retry number ``retry`` (1 before the second try): half of it fixed, half drawn at
        random, so that workers retrying at the same moment spread out."""
        step = min(self.cap_s, self.first_s * self.factor ** (retry - 1))
        return step / 2 + draw() * step / 2

    def within(self, seconds: float) -> Backoff:
        """This policy, with no try starting later than ``seconds`` after the first."""
        return dataclasses.replace(self, total_s=min(self.total_s, seconds))


BACKOFF = Backoff()
ONCE = Backoff(attempts=1)


class RetryError(Exception):
    """Every try failed with a transient error (the helper gave up); ``last`` is the last of them."""

    def __init__(self, last: Exception, attempts: int, elapsed_s: float):
        super().__init__(str(last))
        self.last, self.attempts, self.elapsed_s = last, attempts, elapsed_s

    @property
    def tries(self) -> str:
        """``6 attempts in 9.4 s``."""
        return f"{self.attempts} attempt{'' if self.attempts == 1 else 's'} in {self.elapsed_s:.1f} s"


def retry(action: Callable[[], T], transient: Callable[[Exception], bool], backoff: Backoff = BACKOFF,
          sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic) -> T:
    """``action()``, tried again after an error ``transient`` accepts, as ``backoff`` allows.

    Raises:
        RetryError: the last try failed with a transient error.
        Exception: whatever ``action`` raised that is not transient, at once.
    """
    start = clock()
    for attempt in itertools.count(1):
        try:
            return action()
        except Exception as error:
            if not transient(error):
                raise
            elapsed, wait = clock() - start, backoff.delay(attempt)
            if attempt >= backoff.attempts or elapsed + wait > backoff.total_s:
                raise RetryError(error, attempt, elapsed) from error
            sleep(wait)
    raise AssertionError("unreachable")


@dataclass
class Retries:
    """``retry`` for one peer (a phone, a server): with backoff, but one try only right after giving up on it
    (within ``total_s``): the caller is then cleaning up after that failure, and waiting again would only
    delay its error."""

    backoff: Backoff = BACKOFF
    gave_up_at: float = float("-inf")

    def __call__(self, action: Callable[[], T], transient: Callable[[Exception], bool], within_s: float) -> T:
        """``action()`` with retries, none starting later than ``within_s`` after the first try (the
        operation's own bound).

        Raises:
            RetryError: the last try failed with a transient error.
        """
        recent = time.monotonic() - self.gave_up_at < self.backoff.total_s
        try:
            return retry(action, transient, ONCE if recent else self.backoff.within(within_s))
        except RetryError:
            self.gave_up_at = time.monotonic()
            raise
