"""Failover rounds with real ``daz run`` processes on one database (issue 13, item 4).

Shared by the failover test (which asserts what must hold) and bench_scaleout (which prints
the figures): N instances share the rooms; each round SIGKILLs one of them, times how long each
of its rooms takes to be joined by another instance, starts a replacement, and checks that
every room answered that round's ``!ping`` once and greeted that round's newcomer once.
"""
from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg

from bench.daz_process import BOT_NAME, DazProcess, free_port, prepare_server, write_config
from tests.e2e.support import FAST_PLUGINS

PING_COOLDOWN = 5.0  # seconds: the basics plugin's per-user cooldown on !ping


@dataclass
class Outcome:
    failover_seconds: list[float] = field(default_factory=list)
    pongs: dict[str, int] = field(default_factory=dict)  # channel → pongs the bot said
    pings: int = 0  # !ping lines sent to each room
    greetings: dict[str, int] = field(default_factory=dict)  # newcomer → greetings stored
    duplicate_logins: int = 0
    stored_pings: dict[str, int] = field(default_factory=dict)  # channel → !ping rows


class Crowd:
    def __init__(self, server: Any, dsn: str, workdir: Path, channels: list[str],
                 leases: dict | None = None) -> None:
        self.server, self.workdir, self.channels = server, workdir, channels
        prepare_server(server, channels)
        workdir.mkdir(parents=True, exist_ok=True)
        core: dict = {}  # write_config already turns daz's join pacing off
        if leases:
            core["leases"] = leases
        self.config = write_config(workdir / "config.json", server.base_url, dsn, channels, 0,
                                   core=core, plugins=FAST_PLUGINS)
        self.procs: list[DazProcess] = []
        self._started = 0

    def start(self) -> DazProcess:
        index = self._started
        self._started += 1
        proc = DazProcess(self.config, self.workdir / f"data{index}", free_port(),
                          self.workdir / f"daz{index}.log")
        proc.start()
        return proc

    def bot_sid(self, channel: str) -> str | None:
        for member in self.server.channel(channel).members.values():
            if (member.name or "").lower() == BOT_NAME:
                return member.sid
        return None

    async def holdings(self, proc: DazProcess) -> set[str]:
        rooms = ((await proc.health()).get("leases") or {}).get("rooms") or {}
        return {room for room, info in rooms.items() if info.get("here")}

    async def settled(self, timeout: float = 60.0) -> None:
        """Every room held by exactly one live instance and joined; shares even."""
        deadline = time.monotonic() + timeout
        while True:
            held = [await self.holdings(p) for p in self.procs]
            every = [room for h in held for room in h]
            sizes = [len(h) for h in held]
            if (sorted(every) == sorted(self.channels) and max(sizes) - min(sizes) <= 1
                    and all(self.bot_sid(ch) for ch in self.channels)):
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"rooms not settled: {held}")
            await asyncio.sleep(0.1)

    async def stop(self) -> None:
        await asyncio.gather(*(p.stop() for p in self.procs), return_exceptions=True)


async def wait_for(predicate, timeout: float, what: str | Callable[[], str]) -> None:
    """``what`` names the wait in the timeout's message; a callable is asked at the timeout,
    so the message can show the state then."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what() if callable(what) else what}")
        await asyncio.sleep(0.02)


async def failover_rounds(server: Any, dsn: str, workdir: Path, *, rounds: int,
                          instances: int = 3, rooms: int = 12,
                          leases: dict | None = None) -> Outcome:
    channels = [f"fo{i:02d}" for i in range(rooms)]
    crowd = Crowd(server, dsn, workdir, channels, leases)
    outcome = Outcome()
    try:
        crowd.procs = [crowd.start() for _ in range(instances)]
        await crowd.settled(120)
        regulars = {ch: await server.user(f"reg{ch}", channel=ch) for ch in channels}
        last_ping = -PING_COOLDOWN
        for round_no in range(rounds):
            victim_index = round_no % instances
            victim = crowd.procs[victim_index]
            victim_rooms = await crowd.holdings(victim)
            old = {ch: crowd.bot_sid(ch) for ch in victim_rooms}
            killed = time.monotonic()
            victim.kill()
            pending = set(victim_rooms)
            while pending:
                for ch in list(pending):
                    sid = crowd.bot_sid(ch)
                    if sid is not None and sid != old[ch]:
                        outcome.failover_seconds.append(time.monotonic() - killed)
                        pending.discard(ch)
                if time.monotonic() - killed > 60:
                    raise AssertionError(f"rooms {sorted(pending)} not taken over in 60 s")
                await asyncio.sleep(0.02)
            crowd.procs[victim_index] = crowd.start()
            await crowd.settled(120)
            # A round can be shorter than !ping's per-user cooldown (5 s): a ping sooner than
            # that is rightly refused with a PM, which is not what this checks.
            await asyncio.sleep(max(0.0, last_ping + PING_COOLDOWN + 0.5 - time.monotonic()))
            last_ping = time.monotonic()
            outcome.pings += 1
            for user in regulars.values():
                await user.chat("!ping")
            for ch in channels:
                await wait_for(lambda ch=ch: server.chat_from(ch, BOT_NAME).count("pong")
                               >= outcome.pings, 20,
                               lambda ch=ch: f"pong in {ch} (ping {outcome.pings}; the bot's"
                               f" last lines {server.chat_from(ch, BOT_NAME)[-3:]}, its PMs to"
                               f" reg{ch}: {server.pms_to(f'reg{ch}')[-2:]})")
            newcomer_room = sorted(victim_rooms)[0] if victim_rooms else channels[0]
            newcomer = f"new{round_no}"
            await server.user(newcomer, channel=newcomer_room)
            await wait_for(lambda: any(newcomer in line for line in
                                       server.chat_from(newcomer_room, BOT_NAME)), 20,
                           f"{newcomer} greeted")
        await asyncio.sleep(2)  # time for anything doubled to show up
        outcome.pongs = {ch: server.chat_from(ch, BOT_NAME).count("pong") for ch in channels}
        outcome.duplicate_logins = sum(server.duplicate_logins.values())
        conn = await asyncpg.connect(dsn)
        try:
            rows = await conn.fetch(
                "SELECT username, count(*) AS n FROM daz_greeter_history GROUP BY username")
            outcome.greetings = {r["username"]: r["n"] for r in rows}
            rows = await conn.fetch(
                "SELECT channel_name, count(*) AS n FROM daz_core_events"
                " WHERE event_type = 'cytube.event.chatMsg' AND message = '!ping'"
                " GROUP BY channel_name")
            outcome.stored_pings = {r["channel_name"]: r["n"] for r in rows}
        finally:
            await conn.close()
    finally:
        await crowd.stop()
    return outcome
