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
"""
from __future__ import annotations

import hashlib

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
