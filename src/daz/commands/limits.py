"""In-memory limits the command dispatcher applies: per-user cooldowns and refusal notices.

Both are keyed by lower-cased user name (CyTube names are case-insensitive) and use the
monotonic clock, so a wall-clock jump never unlocks or locks anyone.
"""
from __future__ import annotations


class Cooldowns:
    """Per-user, per-command cooldowns. The key is the *primary* command name, so aliases
    share one cooldown (keyed by the typed word, ``!h`` would dodge ``!help``'s)."""

    PRUNE_ABOVE = 10_000

    def __init__(self) -> None:
        self._until: dict[tuple[str, str], float] = {}

    def remaining(self, user: str, command: str, now: float) -> float:
        until = self._until.get((user.lower(), command))
        return until - now if until is not None and until > now else 0.0

    def start(self, user: str, command: str, seconds: float, now: float) -> None:
        if seconds <= 0:
            return
        self._until[(user.lower(), command)] = now + seconds
        if len(self._until) > self.PRUNE_ABOVE:
            self.prune(now)

    def prune(self, now: float) -> int:
        expired = [key for key, until in self._until.items() if until <= now]
        for key in expired:
            del self._until[key]
        return len(expired)

    def __len__(self) -> int:
        return len(self._until)


class NoticeLimiter:
    """At most one refusal notice per user per ``interval`` seconds.

    Refusals answer by PM; without this, anyone could make the bot send a PM per line they
    type (a cheap way to push the bot into the server's flood limits).
    """

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._last: dict[str, float] = {}

    def allow(self, user: str, now: float) -> bool:
        key = user.lower()
        last = self._last.get(key)
        if last is not None and now - last < self.interval:
            return False
        self._last[key] = now
        if len(self._last) > 10_000:
            self._last = {k: t for k, t in self._last.items() if now - t < self.interval}
        return True
