"""Room leases in PostgreSQL: the SQL side of "which instance holds which room".

A lease is a row in ``daz_room_leases`` that lapses at ``expires_at`` (the database's clock)
unless its holder renews it. Every statement here is one round trip on the holder's own
connection (``LeaseStore`` never borrows from the plugins' pool: a busy pool must not make an
instance miss its renewal). Why rows and not advisory locks: docs/scale-out.md.
"""
from __future__ import annotations

import logging
import math
import uuid
from dataclasses import dataclass, field
from typing import Any

import asyncpg

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Wanted:
    """One configured room as a lease sees it."""

    lease_key: str
    room_id: str
    channel: str


def lease_key(server_url: str, channel: str, username: str) -> str:
    """Two configs that name the same server, channel and account are the same room; two bot
    accounts in one channel are two rooms (they are meant to be there together)."""
    return f"{server_url.rstrip('/').lower()}/r/{channel.lower()}#{username.lower()}"


@dataclass
class Instance:
    instance_id: str
    name: str
    max_rooms: int
    web_url: str
    holds: int


@dataclass
class Snapshot:
    """What the database said at one tick: live instances and live leases."""

    instances: dict[str, Instance] = field(default_factory=dict)
    holders: dict[str, tuple[str, str]] = field(default_factory=dict)  # key → (id, name)


def fair_shares(caps: dict[str, int], rooms: int) -> dict[str, int]:
    """How many rooms each live instance should hold: as even as the caps (0 = none) allow.

    Every instance computes this from the same snapshot, so they agree without talking. Shares
    add up to exactly ``rooms`` (or to what the caps allow); who gets the odd room out is fixed
    by instance id, so nobody gives a room away only to take it back next tick."""
    shares: dict[str, int] = {}
    left = rooms
    order = sorted(caps, key=lambda key: (caps[key] or math.inf, key))
    for index, key in enumerate(order):
        share = -(-left // (len(order) - index))  # ceil
        if caps[key]:
            share = min(share, caps[key])
        shares[key] = max(share, 0)
        left -= shares[key]
    return shares


class LeaseStore:
    def __init__(self, dsn: str, instance_id: uuid.UUID, name: str, *, ttl: float,
                 timeout: float) -> None:
        self.dsn = dsn
        self.instance_id = instance_id
        self.name = name
        self.ttl = ttl
        self.timeout = timeout
        self._conn: asyncpg.Connection | None = None

    async def _connection(self) -> asyncpg.Connection:
        conn = self._conn
        if conn is None or conn.is_closed():
            self._conn = None
            conn = await asyncpg.connect(
                self.dsn, timeout=self.timeout,
                server_settings={"TimeZone": "UTC",
                                 "application_name": f"daz leases {self.name}"[:63]})
            self._conn = conn
        return conn

    async def _run(self, method: str, query: str, *args: Any) -> Any:
        conn = await self._connection()
        try:
            return await getattr(conn, method)(query, *args, timeout=self.timeout)
        except (TimeoutError, OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError):
            await self.close()  # a connection in an unknown state is not reused
            raise

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            conn.terminate()

    # ------------------------------------------------------------------ one tick

    async def announce(self, max_rooms: int, web_url: str, report: str | None = None) -> None:
        """The heartbeat; ``report`` (JSON text, ``status_report.build_status``) replaces the
        row's report when given, and is kept as it was otherwise."""
        await self._run(
            "execute",
            "INSERT INTO daz_instances (instance_id, name, max_rooms, web_url, expires_at,"
            "   report, report_at)"
            " VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5), $6::text::jsonb,"
            "   CASE WHEN $6::text IS NULL THEN NULL ELSE now() END)"
            " ON CONFLICT (instance_id) DO UPDATE SET seen_at = now(),"
            "   expires_at = EXCLUDED.expires_at, max_rooms = EXCLUDED.max_rooms,"
            "   web_url = EXCLUDED.web_url,"
            "   report = coalesce(EXCLUDED.report, daz_instances.report),"
            "   report_at = coalesce(EXCLUDED.report_at, daz_instances.report_at)",
            self.instance_id, self.name, max_rooms, web_url, self.ttl, report)

    async def renew(self, keys: list[str]) -> set[str]:
        """Extend the leases we hold among ``keys``; returns those still ours. Rows of ours that
        are not in ``keys`` (a room we stopped) are given up in the same statement."""
        rows = await self._run(
            "fetch",
            "WITH gone AS (DELETE FROM daz_room_leases WHERE holder = $1"
            "   AND NOT lease_key = ANY($2::text[]))"
            " UPDATE daz_room_leases SET expires_at = now() + make_interval(secs => $3)"
            " WHERE holder = $1 AND lease_key = ANY($2::text[]) RETURNING lease_key",
            self.instance_id, keys, self.ttl)
        return {row["lease_key"] for row in rows}

    async def snapshot(self) -> Snapshot:
        rows = await self._run(
            "fetch",
            "SELECT i.instance_id::text AS id, i.name, i.max_rooms, i.web_url,"
            " (SELECT count(*) FROM daz_room_leases l WHERE l.holder = i.instance_id"
            "   AND l.expires_at > now()) AS holds"
            " FROM daz_instances i WHERE i.expires_at > now()")
        snap = Snapshot()
        for row in rows:
            snap.instances[row["id"]] = Instance(row["id"], row["name"], row["max_rooms"],
                                                 row["web_url"], row["holds"])
        rows = await self._run(
            "fetch",
            "SELECT lease_key, holder::text AS holder, holder_name FROM daz_room_leases"
            " WHERE expires_at > now()")
        snap.holders = {row["lease_key"]: (row["holder"], row["holder_name"]) for row in rows}
        return snap

    async def acquire(self, rooms: list[Wanted]) -> set[str]:
        """Take each of ``rooms`` that is free (no row, or a lapsed one); returns those taken."""
        if not rooms:
            return set()
        rows = await self._run(
            "fetch",
            "INSERT INTO daz_room_leases AS l (lease_key, room_id, channel, holder, holder_name,"
            "   expires_at)"
            " SELECT k, r, c, $4, $5, now() + make_interval(secs => $6)"
            "   FROM unnest($1::text[], $2::text[], $3::text[]) AS u(k, r, c)"
            " ON CONFLICT (lease_key) DO UPDATE SET holder = EXCLUDED.holder,"
            "   holder_name = EXCLUDED.holder_name, room_id = EXCLUDED.room_id,"
            "   channel = EXCLUDED.channel, acquired_at = now(),"
            "   expires_at = EXCLUDED.expires_at, epoch = l.epoch + 1"
            " WHERE l.expires_at <= now()"
            " RETURNING lease_key",
            [w.lease_key for w in rooms], [w.room_id for w in rooms],
            [w.channel for w in rooms], self.instance_id, self.name, self.ttl)
        return {row["lease_key"] for row in rows}

    async def release(self, keys: list[str]) -> None:
        """Give rooms up at once (their rooms are already left), so others take them now
        instead of waiting for the lease to lapse."""
        if keys:
            await self._run("execute",
                            "DELETE FROM daz_room_leases WHERE holder = $1"
                            " AND lease_key = ANY($2::text[])", self.instance_id, keys)

    async def leave(self) -> None:
        """Shutdown: no leases, no instance row (the others rebalance at their next tick)."""
        await self._run("execute", "DELETE FROM daz_room_leases WHERE holder = $1",
                        self.instance_id)
        await self._run("execute",
                        "DELETE FROM daz_instances WHERE instance_id = $1"
                        " OR expires_at < now() - interval '1 day'", self.instance_id)
