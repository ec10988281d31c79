"""The sign-in rate limit: N failed sign-ins in M minutes lock a user name or a client address.

GB/T 22239-2019 (等保2.0) §8.1.4.1 b asks for 登录失败处理 — limit failed sign-ins and end
idle sessions. Failures are counted in memory per key (``user:<name>`` and ``ip:<address>``);
a key with ``max_failures`` failures in the last ``window_s`` seconds is locked until its
oldest counted failure leaves the window. A restart forgets the counts (the audit trail keeps
every failure).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable

MAX_KEYS = 50_000  # beyond it, keys whose failures all left the window are dropped


class FailureCounter:
    """Failed sign-ins per key within a sliding window; thread-safe."""

    def __init__(self, max_failures: int, window_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> deque[float]:
        found = self._failures.get(key)
        if found is None:
            return deque()
        while found and found[0] <= now - self.window_s:
            found.popleft()
        if not found:
            del self._failures[key]
        return found

    def retry_after(self, keys: Iterable[str]) -> float:
        """Seconds until every key in ``keys`` may try again (0: none is locked)."""
        now = self._clock()
        with self._lock:
            waits = [found[0] + self.window_s - now for key in keys
                     if len(found := self._recent(key, now)) >= self.max_failures]
        return max(waits, default=0.0)

    def fail(self, keys: Iterable[str]) -> None:
        """Count one failed sign-in against each key."""
        now = self._clock()
        with self._lock:
            if len(self._failures) > MAX_KEYS:
                self._prune(now)
            for key in keys:
                self._failures.setdefault(key, deque()).append(now)

    def clear(self, keys: Iterable[str]) -> None:
        """Forget the failures of ``keys`` (after a successful sign-in)."""
        with self._lock:
            for key in keys:
                self._failures.pop(key, None)

    def _prune(self, now: float) -> None:
        for key in list(self._failures):
            self._recent(key, now)
