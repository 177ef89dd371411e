"""Several real ``daz run`` processes on one database share the rooms (issue 13, item 1).

Each process is started with the same config file; nothing tells them about each other but the
database. The fake CyTube server counts "Duplicate login" kicks, which is what the real server
does when one account joins a channel twice: it must stay at 0 throughout.
"""
from __future__ import annotations

import asyncio
import json
import os

import pytest

from bench.daz_process import DazProcess, free_port, prepare_server, write_config
from tests.e2e.harness import BOT_NAME, wait_until
from tests.e2e.support import FAST_PLUGINS
from tests.fakes.cytube import FakeCytubeServer

CHANNELS = ["room1", "room2", "room3", "room4"]


@pytest.fixture
async def server():
    # Many bots from one address: the per-address connect limit is not what is tested here.
    fake = FakeCytubeServer(connect_burst=1000, connect_refill_per_s=100)
    await fake.start()
    prepare_server(fake, CHANNELS)
    try:
        yield fake
    finally:
        await fake.stop()


class Instances:
    def __init__(self, server, dsn: str, tmp_path, core: dict | None = None):
        self.server, self.tmp_path = server, tmp_path
        self.config = write_config(tmp_path / "config.json", server.base_url, dsn, CHANNELS, 0,
                                   core={"leases": {"renew_seconds": 0.5, "lease_seconds": 3},
                                         "join_pacing": {"interval_seconds": 0},  # lifted
                                         **(core or {})},
                                   plugins=FAST_PLUGINS)
        self.started: list[DazProcess] = []

    def start(self) -> DazProcess:
        index = len(self.started)
        port = free_port()
        proc = DazProcess(self.config, self.tmp_path / f"data{index}", port,
                          self.tmp_path / f"daz{index}.log")
        proc.start()
        self.started.append(proc)
        return proc

    async def holdings(self, proc: DazProcess) -> set[str]:
        body = await proc.health()
        rooms = (body.get("leases") or {}).get("rooms") or {}
        return {room for room, info in rooms.items() if info.get("here")}

    def bot_in(self, channel: str) -> bool:
        members = self.server.channel(channel).members.values()
        return sum(1 for m in members if (m.name or "").lower() == BOT_NAME) == 1

    async def split(self, procs: list[DazProcess], sizes: list[int]) -> list[set[str]]:
        """Wait until the processes hold ``sizes`` rooms each, every room once, all joined."""
        async def check():
            held = [await self.holdings(p) for p in procs]
            every = [room for h in held for room in h]
            ok = (sorted(len(h) for h in held) == sorted(sizes)
                  and len(set(every)) == len(every)
                  and all(self.bot_in(ch) == (ch in every) for ch in CHANNELS))
            return held if ok else None
        return await wait_until(check, 30, f"rooms split {sizes}", interval=0.1)

    async def stop_all(self) -> None:
        await asyncio.gather(*(p.stop() for p in self.started), return_exceptions=True)


async def test_instances_share_rooms_and_take_over_from_a_killed_one(server, migrated_dsn,
                                                                    tmp_path):
    crowd = Instances(server, migrated_dsn, tmp_path)
    try:
        first, second = crowd.start(), crowd.start()
        await crowd.split([first, second], [2, 2])

        # Something that must happen exactly once across the takeover: a tell for dave.
        held_first = await crowd.holdings(first)
        channel = sorted(held_first)[0]
        alice = await server.user("alice", channel=channel)
        await alice.chat("!tell dave see you")
        await wait_until(lambda: any(line.startswith("OK, I'll tell dave")
                                     for line in server.chat_from(channel, BOT_NAME)), 10,
                         "tell stored")
        await alice.chat("!ping")
        await wait_until(lambda: server.chat_from(channel, BOT_NAME).count("pong") == 1, 10,
                         "pong")

        first.kill()
        await crowd.split([second], [4])
        dave = await server.user("dave", channel=channel)
        await wait_until(lambda: any(line.startswith("dave: alice left you")
                                     for line in server.chat_from(channel, BOT_NAME)), 15,
                         "tell delivered after the takeover")
        assert dave.name == "dave"

        # A third instance arrives: the rooms are spread again, still one bot per room.
        third = crowd.start()
        await crowd.split([second, third], [2, 2])
        await asyncio.sleep(1.5)  # several lease ticks: nothing flaps back
        lines = server.chat_from(channel, BOT_NAME)
        assert lines.count("pong") == 1  # the replayed !ping was not answered by the new holder
        assert sum(1 for line in lines if line.startswith("dave: alice left you")) == 1
        assert server.duplicate_logins == {}
    finally:
        await crowd.stop_all()


async def test_sigterm_hands_rooms_over_and_max_rooms_caps(server, migrated_dsn, tmp_path):
    crowd = Instances(server, migrated_dsn, tmp_path, core={"max_rooms": 3})
    try:
        first = crowd.start()
        # Alone, capped at 3: one room stays unheld, and /health says so.
        await wait_until(lambda: sum(crowd.bot_in(ch) for ch in CHANNELS) == 3, 30,
                         "three rooms joined")
        body = await first.health()
        assert sum(1 for info in body["leases"]["rooms"].values() if info["holder"]) == 3
        second = crowd.start()
        await crowd.split([first, second], [2, 2])
        await shows_who_holds_what(first, second, await crowd.holdings(second))
        loop = asyncio.get_running_loop()
        started = loop.time()
        await first.stop()
        await crowd.split([second], [3])
        handover = loop.time() - started
        assert handover < 10  # the figure itself is bench_scaleout's; this only bounds a hang
        assert server.duplicate_logins == {}
    finally:
        await crowd.stop_all()


async def test_three_instances_twelve_rooms_survive_sigkills(migrated_dsn, tmp_path):
    """Issue 13 item 4 as a test (bench_scaleout runs five rounds and prints the times)."""
    from bench.scaleout_scenario import failover_rounds

    fake = FakeCytubeServer(connect_burst=1000, connect_refill_per_s=100)
    await fake.start()
    try:
        outcome = await failover_rounds(fake, migrated_dsn, tmp_path, rounds=2,
                                        leases={"renew_seconds": 0.5, "lease_seconds": 3})
    finally:
        await fake.stop()
    assert outcome.failover_seconds  # the killed instances held rooms
    assert set(outcome.pongs.values()) == {outcome.pings}  # every !ping answered once
    assert set(outcome.stored_pings.values()) == {outcome.pings}  # and stored once
    # Regulars and each round's newcomer: greeted once, however often their room changed hands.
    assert {"new0", "new1"} <= set(outcome.greetings)
    assert set(outcome.greetings.values()) == {1}
    assert outcome.duplicate_logins == 0


async def shows_who_holds_what(first: DazProcess, second: DazProcess, seconds: set[str]) -> None:
    """/metrics, the channel list and the room pages say which instance holds which room."""
    import aiohttp

    second_name = (await second.health())["leases"]["instance"]
    base = f"http://127.0.0.1:{first.web_port}"
    async with aiohttp.ClientSession() as http:
        async with http.get(base + "/metrics") as response:
            metrics = await response.text()
        held = [line for line in metrics.splitlines()
                if line.startswith("daz_room_held{") and line.endswith(" 1.0")]
        assert len(held) == 2 and not any(f'room="{room}"' in line
                                          for line in held for room in seconds)
        async def page_lists_both() -> bool:  # the page reads the last lease tick
            async with http.get(base + "/") as response:
                return (await response.text()).count(f"held by {second_name}") == 2
        await wait_until(page_lists_both, 5, "the channel list names the other instance")
        room = sorted(seconds)[0]
        async with http.get(f"{base}/c/{room}", allow_redirects=False) as response:
            assert response.status == 302
            assert response.headers["Location"] == (
                f"http://127.0.0.1:{second.web_port}/c/{room}")


async def daz_status(*args: str):
    """``daz status`` as an operator runs it (no DAZ_* variables from the test's environment)."""
    from click.testing import CliRunner

    from daz.cli import main

    env = {k: None for k in os.environ if k.startswith("DAZ_")}
    return await asyncio.to_thread(CliRunner().invoke, main, ["status", *args], env=env)


def table_row(output: str, start: str) -> str:
    rows = [line for line in output.splitlines() if line.startswith(start)]
    assert len(rows) == 1, (start, output)
    return rows[0]


async def test_status_reads_every_instance_and_room_from_the_shared_database(
        server, migrated_dsn, tmp_path):
    """Issue 15 item 6: with several instances on one database, ``daz status --config`` reads
    the lease tables and each instance's heartbeat report: every instance (a killed one shown
    stale), every room with its holder and state, rooms waiting to be joined, and queues."""
    crowd = Instances(server, migrated_dsn, tmp_path, core={"max_rooms": 3})
    config = str(crowd.config)
    try:
        first, second = crowd.start(), crowd.start()
        held = await crowd.split([first, second], [2, 2])
        names = [(await p.health())["leases"]["instance"] for p in (first, second)]
        result = None

        async def reports_in() -> bool:  # reports follow the heartbeat every 2 s
            nonlocal result
            result = await daz_status("--config", config)
            return result.exit_code == 0 and result.output.count(" joined ") == 4
        await wait_until(reports_in, 20, "daz status: both instances reported")
        out = result.output
        assert out.splitlines()[0].endswith(
            ": 2 instance(s) alive; 4 of 4 room(s) held, 4 joined; healthy"), out
        for name, rooms in zip(names, held, strict=True):
            row = table_row(out, f"instance {name} ")
            assert " alive " in row and f"holds 2: {', '.join(sorted(rooms))}" in row, row
            assert "database ok" in row and "0 spilled" in row and "outbox 0" in row, row
            assert "plugins " in row and "heartbeat " in row, row
            for room in rooms:
                row = table_row(out, f"room {room} ")
                assert " joined " in row and f"held by {name} " in row, row
                assert "1 users" in row, row  # the bot itself

        # SIGKILL: nothing of the first is left but its row, which stops being renewed. Its two
        # rooms: one goes to the second (capped at 3), the other waits to be joined.
        first.kill()
        await crowd.split([second], [3])
        waiting_room = next(ch for ch in CHANNELS if not crowd.bot_in(ch))

        async def shown_stale() -> bool:
            nonlocal result
            result = await daz_status("--config", config)
            return (result.exit_code == 2 and " STALE " in result.output
                    and result.output.count(" joined ") == 3)
        await wait_until(shown_stale, 20, "daz status: the killed instance stale")
        out = result.output
        assert ": 1 instance(s) alive, 1 stale; 3 of 4 room(s) held, 3 joined; NOT healthy" \
            in out.splitlines()[0], out
        row = table_row(out, f"instance {names[0]} ")
        assert " STALE " in row and "last heartbeat " in row and "holds nothing now" in row, row
        assert "holds 3: " in table_row(out, f"instance {names[1]} ")
        row = table_row(out, f"room {waiting_room} ")
        assert " waiting " in row and "waiting to be joined" in row, row
        assert f"last held by {names[0]}, whose lease lapsed" in row, row
        assert f"waiting to be joined: {waiting_room}" in out.split("problems:")[1]
        for room in set(CHANNELS) - {waiting_room}:
            assert f"held by {names[1]} " in table_row(out, f"room {room} ")

        as_json = json.loads((await daz_status("--dsn", migrated_dsn, "--json")).output)
        assert as_json["waiting"] == [waiting_room]  # without a config: from the lease rows
        by_name = {i["name"]: i for i in as_json["instances"]}
        assert {name: i["alive"] for name, i in by_name.items()} == {names[0]: False,
                                                                     names[1]: True}
        assert by_name[names[1]]["queues"]["eventlog_spilled"] == 0

        # A third instance takes the waiting room: everything is held and joined again.
        third = crowd.start()
        await crowd.split([second, third], [2, 2])
        third_name = (await third.health())["leases"]["instance"]

        async def healthy_again() -> bool:
            nonlocal result
            result = await daz_status("--config", config)
            return result.exit_code == 0 and f"held by {third_name} " in result.output
        await wait_until(healthy_again, 20, "daz status: the third instance holds rooms")
        assert " STALE " in table_row(result.output, f"instance {names[0]} ")
        assert server.duplicate_logins == {}
    finally:
        await crowd.stop_all()
