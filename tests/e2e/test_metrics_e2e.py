"""/metrics of the whole running bot: real traffic through the fake CyTube server and a real
PostgreSQL shows up as real values (events, sends, commands, event log, database, room), a
server restart as a reconnect, and a plugin that raises as a handler error."""
from __future__ import annotations

import asyncio

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from daz.cytube.events import ChatMessage
from daz.plugins.base import Plugin, on
from daz.plugins.manager import available_plugins
from tests.e2e.harness import BOT_NAME, running_bot, wait_until
from tests.e2e.support import CHANNEL, plugins

ROOM = CHANNEL  # the harness gives the room the channel's name as its id
USED = ("sql", "eventfilter", "basics")  # event log, command dispatch, !ping

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


class Boomer(Plugin):
    """A plugin with a bug: its chat handler raises on one line."""

    name = "boomer"
    description = "raises on 'boom' (test plugin)"

    @on(ChatMessage)
    async def explode(self, event: ChatMessage) -> None:
        if event.text == "boom":
            raise RuntimeError("boomer: a handler bug, on purpose")


def plugin_classes() -> dict[str, type[Plugin]]:
    builtin = available_plugins()
    return {**{name: builtin[name] for name in USED}, "boomer": Boomer}


async def scrape(bot) -> Samples:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"http://127.0.0.1:{bot.web.port}/metrics") as response:
            assert response.status == 200
            text = await response.text()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


async def scrape_until(bot, check, what: str, timeout: float = 10.0) -> Samples:
    """Scrape until ``check(samples)`` holds (the web server may be rebuilding for a moment)."""
    latest: Samples = {}

    async def ok() -> bool:
        nonlocal latest
        try:
            latest = await scrape(bot)
        except aiohttp.ClientError:
            return False
        return bool(check(latest))

    await wait_until(ok, timeout, what, interval=0.05)
    return latest


async def test_metrics_show_the_running_bots_traffic_database_and_handler_errors(
        fake_server, migrated_dsn, tmp_path):
    server = fake_server
    async with running_bot(server, migrated_dsn, tmp_path, web=True, plugins=plugins(),
                           plugin_classes=plugin_classes()) as bot:
        alice = await server.user("alice")
        await alice.chat("hello everyone")
        await alice.chat("!ping")
        await wait_until(lambda: "pong" in server.chat_from(CHANNEL, BOT_NAME), 10, "pong")

        def traffic_counted(s: Samples) -> bool:
            return ((value(s, "daz_outbox_sent_total", room=ROOM, kind="chat") or 0) >= 1
                    and (value(s, "daz_eventlog_events_total", stage="written") or 0) > 0
                    and (value(s, "daz_commands_total", command="ping", outcome="ok") or 0) >= 1)

        s = await scrape_until(bot, traffic_counted, "pong, command and written log rows counted")
        # alice's two lines, plus the bot's echoed pong and the join history
        assert value(s, "daz_events_received_total", type="chatMsg") >= 2
        assert value(s, "daz_room_events_received_total", room=ROOM) >= 2
        # Never per room and type: that grew with rooms × types (25,000 series at 1,000 rooms)
        assert not [key for key in s if key[0].startswith("daz_events_received")
                    and "room" in dict(key[1])]
        assert value(s, "daz_outbox_queue_depth", room=ROOM) == 0  # present, and drained
        assert value(s, "daz_db_pool_size") > 0
        assert value(s, "daz_db_up") == 1
        assert value(s, "daz_room_connected", room=ROOM) == 1
        assert value(s, "daz_handler_errors_total", plugin="boomer") is None  # nothing failed yet
        written = value(s, "daz_eventlog_events_total", stage="written")
        rows = await bot.db.fetchval("SELECT count(*) FROM daz_core_events WHERE channel_name = $1",
                                     CHANNEL)
        # Each written event is one daz_core_events row here (default rules, nothing replayed
        # twice in this run), and rows only grow after the scrape: the counter is not inflated.
        assert 0 < written <= rows

        await alice.chat("boom")
        s = await scrape_until(
            bot, lambda s: value(s, "daz_handler_errors_total", plugin="boomer"),
            "the boomer's failure counted")
        assert value(s, "daz_handler_errors_total", plugin="boomer") >= 1
        for healthy in USED:  # the failure is charged to the plugin that raised, no other
            assert not value(s, "daz_handler_errors_total", plugin=healthy)
        bob = await server.user("bob")  # not alice: her !ping is still cooling down
        await bob.chat("!ping")  # the bot still answers after a plugin's failure
        await scrape_until(
            bot, lambda s: value(s, "daz_commands_total", command="ping", outcome="ok") == 2
            and value(s, "daz_outbox_sent_total", room=ROOM, kind="chat") == 2,
            "bob's !ping answered and counted")


async def test_a_server_restart_shows_as_disconnected_then_a_reconnect(fake_server, migrated_dsn,
                                                                        tmp_path):
    server = fake_server
    async with running_bot(server, migrated_dsn, tmp_path, web=True, plugins=plugins(),
                           plugin_classes=plugin_classes()) as bot:
        s = await scrape_until(bot, lambda s: value(s, "daz_room_connected", room=ROOM) == 1,
                               "connected before the restart")
        assert not value(s, "daz_reconnects_total", room=ROOM)

        restart = asyncio.create_task(server.restart(down_for=1.5))
        try:
            await scrape_until(bot, lambda s: value(s, "daz_room_connected", room=ROOM) == 0,
                               "disconnected while the server is down", timeout=5)
        finally:
            await asyncio.wait_for(restart, 10)
        await bot.wait_joined(20)
        s = await scrape_until(bot, lambda s: value(s, "daz_room_connected", room=ROOM) == 1,
                               "connected again")
        assert value(s, "daz_reconnects_total", room=ROOM) >= 1
