"""Sign-in attempts: counted per client and per user name over a window that moves on."""
from __future__ import annotations

from components.portal.limiter import AttemptLimiter


def test_the_limiter_forgets_names_once_their_window_has_passed():
    now = [0.0]
    limiter = AttemptLimiter(per_client=100, per_user=2, window_s=10, clock=lambda: now[0])
    assert limiter.allow("1.2.3.4", "ada") and limiter.allow("1.2.3.4", "ADA")
    assert not limiter.allow("5.6.7.8", "ada")      # the name's share is used up, from any address
    now[0] = 11
    assert limiter.allow("1.2.3.4", "grace")
    assert len(limiter._seen) == 2      # ada's attempts are gone, and so is her key
    assert limiter.allow("1.2.3.4", "ada")
