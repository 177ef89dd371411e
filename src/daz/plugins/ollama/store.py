"""Exactly-once replies and rate limits, in the Go Daz tables from core migration 031.

* ``daz_ollama_responses``: a message is **claimed** (a row inserted with no text yet) before
  the model is called; the unique key (channel, username, message_hash, message_time) lets only
  one claimer win, so two daz processes on one database never both answer (unlike the Go
  bot: docs/upgrading-from-go.md).
* ``daz_ollama_rate_limits``: one row per (channel, username) with the time of the last reply.
  The per-channel limit uses the same table under the username ``*channel*``, which no CyTube
  name can be (names are ``[\\w-]``), so Go Daz reading the table is not confused by it.
  Both limits are taken in one transaction: if the channel limit refuses, the user's window is
  not used up.

``MemoryStore`` does the same in process memory, for running without a database.
"""
from __future__ import annotations

import hashlib
import time

from daz.db.pool import rows_affected

CHANNEL_KEY = "*channel*"


def message_hash(channel: str, username: str, message: str, message_time: int) -> str:
    """Hex SHA-256 of ``channel:username:message:message_time`` (Go Daz's key)."""
    return hashlib.sha256(f"{channel}:{username}:{message}:{message_time}".encode(
        "utf-8", "surrogatepass")).hexdigest()


class _Refused(Exception):
    """Rolls the rate-limit transaction back."""


class ResponseStore:
    def __init__(self, db):
        self.db = db

    async def claim(self, channel: str, username: str, digest: str, message_time: int) -> bool:
        """True for exactly one caller per message (raises when the database fails)."""
        return bool(await self.db.fetchval(
            "SELECT ollama_claim_response($1, $2, $3, $4)",
            channel, username, digest, message_time))

    async def take_rate_limits(self, channel: str, username: str, user_seconds: int,
                               channel_seconds: int) -> str | None:
        """None when a reply may go out now (both clocks restarted); else "user" or "channel"."""
        async with self.db.acquire() as conn:
            try:
                async with conn.transaction():
                    # A limit of 0 is no limit: not taken at all, because the function compares
                    # with the transaction's start time and a concurrent commit could look newer.
                    if user_seconds > 0 and not await conn.fetchval(
                            "SELECT ollama_take_rate_limit($1, $2, $3)",
                            channel, username, user_seconds):
                        raise _Refused("user")
                    if channel_seconds > 0 and not await conn.fetchval(
                            "SELECT ollama_take_rate_limit($1, $2, $3)",
                            channel, CHANNEL_KEY, channel_seconds):
                        raise _Refused("channel")
            except _Refused as refused:
                return str(refused)
        return None

    async def record_reply(self, channel: str, username: str, digest: str, message_time: int,
                           text: str) -> None:
        """Store the text we sent (idempotent: run again by the retry queue if it fails)."""
        await self.db.execute(
            "INSERT INTO daz_ollama_responses (channel, username, message_hash, message_time,"
            " response_text) VALUES ($1, $2, $3, $4, $5)"
            " ON CONFLICT (channel, username, message_hash, message_time)"
            " DO UPDATE SET response_text = EXCLUDED.response_text",
            channel, username, digest, message_time, text)

    async def cleanup(self, response_hours: float = 24, limit_hours: float = 1) -> tuple[int, int]:
        responses = await self.db.execute(
            "DELETE FROM daz_ollama_responses"
            " WHERE responded_at < localtimestamp - make_interval(secs => $1)",
            response_hours * 3600.0)
        limits = await self.db.execute(
            "DELETE FROM daz_ollama_rate_limits"
            " WHERE last_response_at < localtimestamp - make_interval(secs => $1)",
            limit_hours * 3600.0)
        return rows_affected(responses), rows_affected(limits)


class MemoryStore:
    """The same contract without a database: one process only, forgotten on restart."""

    def __init__(self, clock=time.monotonic, max_entries: int = 10_000):
        self._clock = clock
        self._claimed: dict[tuple, float] = {}
        self._last: dict[tuple[str, str], float] = {}
        self.replies: dict[tuple, str] = {}
        self.max_entries = max_entries

    async def claim(self, channel: str, username: str, digest: str, message_time: int) -> bool:
        key = (channel, username, digest, message_time)
        if key in self._claimed:
            return False
        if len(self._claimed) >= self.max_entries:  # bounded: forget the oldest half
            oldest = sorted(self._claimed, key=self._claimed.__getitem__)
            for old in oldest[: self.max_entries // 2]:
                del self._claimed[old]
        self._claimed[key] = self._clock()
        return True

    async def take_rate_limits(self, channel: str, username: str, user_seconds: int,
                               channel_seconds: int) -> str | None:
        now = self._clock()
        user_key, channel_key = (channel, username), (channel, CHANNEL_KEY)
        if now - self._last.get(user_key, float("-inf")) < user_seconds:
            return "user"
        if now - self._last.get(channel_key, float("-inf")) < channel_seconds:
            return "channel"
        self._last[user_key] = self._last[channel_key] = now
        return None

    async def record_reply(self, channel: str, username: str, digest: str, message_time: int,
                           text: str) -> None:
        self.replies[(channel, username, digest, message_time)] = text
        if len(self.replies) > self.max_entries:
            self.replies.pop(next(iter(self.replies)))

    async def cleanup(self, response_hours: float = 24, limit_hours: float = 1) -> tuple[int, int]:
        now = self._clock()
        old = [k for k, t in self._claimed.items() if now - t > response_hours * 3600]
        for key in old:
            del self._claimed[key]
            self.replies.pop(key, None)
        stale = [k for k, t in self._last.items() if now - t > limit_hours * 3600]
        for key in stale:
            del self._last[key]
        return len(old), len(stale)
