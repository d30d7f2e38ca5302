"""Sign-in attempts per client and per user name, counted over a sliding window (in memory, per portal)."""
from __future__ import annotations

import collections
import threading
import time

WINDOW_S = 300.0
PER_CLIENT = 20        # attempts from one address in the window
PER_USER = 5           # attempts for one user name in the window, from anywhere


class AttemptLimiter:
    """`allow(client, user)` counts an attempt, and says False once either has had its share of the window."""

    def __init__(self, per_client: int = PER_CLIENT, per_user: int = PER_USER, window_s: float = WINDOW_S,
                 clock=time.monotonic):
        self.limits = {"client": per_client, "user": per_user}
        self.window_s, self.clock = window_s, clock
        self._seen: dict[tuple[str, str], collections.deque] = {}
        self._lock = threading.Lock()

    def allow(self, client: str, user: str) -> bool:
        now = self.clock()
        keys = (("client", client), ("user", user.lower()))
        with self._lock:
            for key in list(self._seen):      # every window moves on: a name tried once is not kept for ever
                seen = self._seen[key]
                while seen and seen[0] <= now - self.window_s:
                    seen.popleft()
                if not seen:
                    del self._seen[key]
            if any(len(self._seen.get(key, ())) >= self.limits[key[0]] for key in keys):
                return False
            for key in keys:
                self._seen.setdefault(key, collections.deque()).append(now)
            return True
