"""What to do after a connection fails, a login is refused or we are kicked; and how long to wait
before trying again.

Pure decisions, no sockets: the lifecycle (lifecycle.py) asks, the rules live here so they can be
tested on their own (tests/unit/test_connection_policy.py). The facts behind them are CyTube's
login errors and kick reasons, as a live server sends them.
"""
from __future__ import annotations

import random
import re
from dataclasses import dataclass

RATE_LIMIT_WAIT = 10.0  # the server's per-IP connect bucket refills one token per 10 s


@dataclass(frozen=True)
class Verdict:
    """What to do after a failure: give up (``fatal``), wait at least ``min_wait`` seconds, or
    (``slow``) wait the room's longest backoff."""

    fatal: bool = False
    min_wait: float = 0.0
    slow: bool = False
    relogin: bool = False  # keep the socket, send ``login`` again after ``min_wait``
    reason: str = ""


_GUEST_DELAY = re.compile(r"(\d+(?:\.\d+)?)\s*seconds?", re.I)


def judge_login_error(error: str) -> Verdict:
    """CyTube's login failures: the permanent ones stop the room."""
    text = error or "login refused"
    low = text.lower()
    if ("invalid username/password" in low or "username is registered" in low
            or "invalid username" in low or "username is reserved" in low):
        return Verdict(fatal=True, reason=f"login failed: {text}")
    if "guest logins are restricted" in low:
        match = _GUEST_DELAY.search(text)
        seconds = float(match.group(1)) if match else 60.0
        return Verdict(min_wait=seconds + 1.0, relogin=True, reason=f"login delayed: {text}")
    # "That name is already in use on this channel." and anything new: a ghost may clear.
    return Verdict(min_wait=5.0, reason=f"login failed: {text}")


def judge_kick(reason: str, duplicate_kicks_before: int) -> Verdict:
    """A ban is final. A duplicate login gets one slow retry (the other session may have been a
    person borrowing the account for a minute); a second one means another bot runs with this
    account, and two bots must not kick each other in a loop (docs/upgrading-from-go.md)."""
    low = (reason or "").lower()
    if "ban" in low:
        return Verdict(fatal=True, reason=f"kicked: {reason}")
    if "duplicate login" in low:
        if duplicate_kicks_before >= 1:
            return Verdict(fatal=True, reason=f"kicked twice: {reason} (another session uses "
                                              "this account)")
        return Verdict(slow=True, reason=f"kicked: {reason}")
    return Verdict(min_wait=30.0, reason=f"kicked: {reason or 'no reason given'}")


class Backoff:
    """Capped exponential backoff with "equal jitter": attempt n waits a random time in
    [d/2, d] with d = min(cap, base * 2**(n-1)). ``connected_for`` resets it once a connection
    has been stable, so one flap an hour never waits five minutes."""

    def __init__(self, *, base: float = 1.0, cap: float = 300.0, stable_after: float = 60.0,
                 rng: random.Random | None = None):
        self.base = base
        self.cap = max(base, cap)
        self.stable_after = stable_after
        self.rng = rng or random.Random()
        self.failures = 0

    def next_delay(self, min_wait: float = 0.0) -> float:
        self.failures += 1
        ceiling = min(self.cap, self.base * 2 ** min(self.failures - 1, 30))
        delay = self.rng.uniform(ceiling / 2, ceiling)
        if min_wait > 0:
            delay = max(delay, min_wait + self.rng.uniform(0, min(5.0, min_wait / 2)))
        return delay

    def connected_for(self, seconds: float) -> None:
        if seconds >= self.stable_after:
            self.failures = 0

    def reset(self) -> None:
        self.failures = 0
