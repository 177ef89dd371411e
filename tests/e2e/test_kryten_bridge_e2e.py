"""Unmodified Kryten clients against daz's bridge (issue 13, items 2 and 3).

kryten-py 0.17 and the ``kryten`` command talk to the whole bot (fake CyTube server, real
PostgreSQL, real NATS with JetStream): events reach the client, its commands reach the room,
queries and the KV buckets answer with the room's state.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import uuid
from pathlib import Path

import nats
import pytest
from kryten import KrytenClient

from daz.app import App
from daz.config import NatsConfig
from tests.e2e.harness import BOT_NAME, BOT_PASSWORD, RunningBot, bot_config, wait_until
from tests.nats_server import nats_server

DOMAIN = "127.0.0.1"  # what daz names the fake server's rooms (its host)


@pytest.fixture
def nats_url():
    with nats_server() as url:
        yield url


@pytest.fixture
def channel():
    return f"kr{uuid.uuid4().hex[:10]}"


async def delete_buckets(url: str, channel: str) -> None:
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        for kind in ("userlist", "playlist", "emotes", "state"):
            try:
                await js.delete_key_value(f"kryten_{channel}_{kind}")
            except Exception:
                pass
    finally:
        await nc.close()


@contextlib.asynccontextmanager
async def bridged_bot(server, dsn: str, data_dir, channel: str, url: str):
    """The bot (sql, eventfilter, basics) in ``channel``, bridged to NATS at ``url``."""
    server.add_account(BOT_NAME, BOT_PASSWORD)
    server.set_channel_rank(channel, BOT_NAME, 2)
    config = bot_config(server.base_url, dsn, channel=channel)
    config.core.nats = NatsConfig(url=url)
    app = App(config, data_dir=data_dir, only_plugins=["sql", "eventfilter", "basics"],
              web=False)
    bot = RunningBot(app)
    try:
        await app.start()
        await bot.wait_joined()
        await wait_until(lambda: app.bridge.connected, 10, "bridge connected to NATS")
        yield bot
    finally:
        await app.stop()


@pytest.fixture
async def bridged(fake_server, migrated_dsn, tmp_path, nats_url, channel):
    try:
        async with bridged_bot(fake_server, migrated_dsn, tmp_path, channel, nats_url) as bot:
            yield bot
    finally:
        await delete_buckets(nats_url, channel)


@pytest.fixture
async def kryten(nats_url, channel):
    client = KrytenClient({"nats": {"servers": [nats_url]},
                           "channels": [{"domain": DOMAIN, "channel": channel}]})
    received: list = []
    for name in ("chatmsg", "adduser", "changemedia", "userlist"):
        client.on(name)(lambda event, name=name: _note(received, name, event))
    await client.connect()
    client.received = received
    try:
        yield client
    finally:
        await client.disconnect()


async def _note(received: list, name: str, event) -> None:
    received.append((name, event))


def seen(client, name: str) -> list:
    return [event for kind, event in client.received if kind == name]


async def test_kryten_client_sees_the_room_and_drives_it(bridged, kryten, fake_server, channel):
    alice = await fake_server.user("alice", channel=channel)
    await wait_until(lambda: any(e.username == "alice" for e in seen(kryten, "adduser")), 10,
                     "adduser for alice")
    await alice.chat("hello kryten")
    chat = await wait_until(lambda: [e for e in seen(kryten, "chatmsg")
                                     if e.message == "hello kryten"], 10, "chat event")
    assert chat[0].username == "alice" and chat[0].channel == channel
    uid = await fake_server.queue_media(channel, {"id": "dQw4w9WgXcQ", "title": "Song",
                                                  "seconds": 213, "type": "yt"})
    await fake_server.play(channel, uid)
    media = await wait_until(lambda: seen(kryten, "changemedia"), 10, "changemedia event")
    assert media[0].media_id == "dQw4w9WgXcQ" and media[0].title == "Song"

    await kryten.send_chat(channel, "hello from kryten")
    await wait_until(lambda: "hello from kryten" in fake_server.chat_from(channel, BOT_NAME), 10,
                     "the bot says what the client asked")
    await kryten.send_pm(channel, "alice", "psst alice")
    await wait_until(lambda: ("dazbot", "psst alice") in [
        (who.lower(), text) for who, text in fake_server.pms_to("alice")], 10, "PM delivered")

    refused = await kryten.add_media(channel, "yt", "9bZkp7q19f0")  # no API key on the server
    assert refused["data"]["success"] is False and "API key" in refused["data"]["error"]
    added = await kryten.add_media(channel, "tw", "somestreamer")
    assert added["success"] is True and added["data"]["success"] is True, added
    new_uid = added["data"]["uid"]
    assert new_uid in [entry.uid for entry in fake_server.channel(channel).playlist]

    user = await kryten.get_user(channel, "alice")
    assert user and user["name"] == "alice"
    from daz import __version__
    assert await kryten.get_version() == __version__
    channels = await kryten.get_channels()
    assert [c["channel"] for c in channels] == [channel] and channels[0]["connected"]

    # The KV buckets hold the room's state, as the old bridge's clients read them.
    items = await wait_until(lambda: _kv_has(kryten, channel, new_uid), 10, "playlist KV")
    assert [i["media"]["id"] for i in items] == ["dQw4w9WgXcQ", "somestreamer"]
    users = await kryten.kv_get(f"kryten_{channel}_userlist", "users", parse_json=True)
    assert {u["name"] for u in users} >= {"alice", BOT_NAME}
    current = await kryten.get_state_current_media(channel)
    assert current["id"] == "dQw4w9WgXcQ" and current["uid"] == uid


async def _kv_has(client, channel: str, uid: int):
    items = await client.get_state_playlist_items(channel)
    return items if any(i.get("uid") == uid for i in items) else None


async def replies(url: str, request: dict, wait: float = 1.0) -> list[dict]:
    """Every reply to one request within ``wait`` seconds (exactly one is right)."""
    nc = await nats.connect(url)
    got: list[dict] = []
    try:
        inbox = nc.new_inbox()

        async def note(msg) -> None:
            got.append(json.loads(msg.data))

        sub = await nc.subscribe(inbox, cb=note)
        await nc.publish("kryten.robot.command", json.dumps(request).encode(), reply=inbox)
        await asyncio.sleep(wait)
        await sub.unsubscribe()
    finally:
        await nc.close()
    return got


async def test_one_reply_each_and_errors_instead_of_silence(bridged, nats_url, channel):
    meta = {"channel": channel, "domain": DOMAIN}
    for command in ("system.ping", "system.health", "state.userlist"):
        answers = await replies(nats_url, {"command": command, "meta": meta})
        assert len(answers) == 1 and answers[0]["success"] is True, (command, answers)
    unknown = await replies(nats_url, {"command": "fly", "args": {}, "meta": meta})
    assert len(unknown) == 1 and unknown[0]["success"] is False
    assert "unknown command" in unknown[0]["error"]
    missing = await replies(nats_url, {"args": {}, "meta": meta})
    assert len(missing) == 1 and missing[0]["success"] is False
    bad_uid = await replies(nats_url, {"command": "rmvideo", "args": {"uid": "x7"},
                                       "meta": meta})
    assert bad_uid[0]["success"] is False and "number" in bad_uid[0]["error"]
    # A channel daz does not run is left to whichever bridge runs it: no answer from daz.
    assert await replies(nats_url, {"command": "say", "args": {"message": "hi"},
                                    "meta": {"channel": "elsewhere", "domain": DOMAIN}}) == []


async def test_a_system_query_about_a_channel_gets_one_reply_with_two_deployments(
        bridged, fake_server, migrated_dsn, tmp_path, nats_url, channel):
    """A second daz deployment (other rooms, its own queue group) on the same NATS leaves a
    system query about a channel it does not run to the deployment that runs it."""
    other = f"kr{uuid.uuid4().hex[:10]}"
    try:
        async with bridged_bot(fake_server, migrated_dsn, tmp_path / "other", other, nats_url):
            for target in (channel, other):
                for command in ("system.ping", "system.health"):
                    answers = await replies(nats_url, {"command": command, "meta": {
                        "channel": target, "domain": DOMAIN}})
                    assert len(answers) == 1, (target, command, answers)
                    assert answers[0]["data"].get("channel", target) == target
            # Naming no channel, each deployment answers for itself.
            assert len(await replies(nats_url, {"command": "system.ping"})) == 2
    finally:
        await delete_buckets(nats_url, other)


async def test_numeric_and_string_uids_both_work(bridged, kryten, fake_server, channel):
    first = await fake_server.queue_media(channel, {"id": "aaaaaaaaaaa", "title": "A",
                                                    "seconds": 60, "type": "yt"})
    second = await fake_server.queue_media(channel, {"id": "bbbbbbbbbbb", "title": "B",
                                                     "seconds": 60, "type": "yt"})
    await kryten.delete_media(channel, first)  # an int, as kryten-py sends it
    await kryten.send_command("robot", "rmvideo", {"uid": str(second)}, DOMAIN, channel)
    await wait_until(lambda: not fake_server.channel(channel).playlist, 10,
                     "both items deleted")


async def test_kryten_cli_say_reaches_the_room(bridged, fake_server, nats_url, channel):
    kryten_cli = Path(sys.executable).with_name("kryten")
    result = subprocess.run([str(kryten_cli), "--channel", channel, "--domain", DOMAIN,
                             "--nats", nats_url, "say", "hello from the cli"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    await wait_until(lambda: "hello from the cli" in fake_server.chat_from(channel, BOT_NAME),
                     10, "the CLI's line in the room")


async def test_rooms_keep_working_while_nats_is_down(fake_server, migrated_dsn, tmp_path,
                                                     channel):
    from tests.nats_server import own_nats_server

    with own_nats_server() as natsd:
        async with bridged_bot(fake_server, migrated_dsn, tmp_path, channel, natsd.url) as bot:
            app = bot.app
            natsd.stop()
            await wait_until(lambda: not app.bridge.connected, 10, "bridge sees NATS gone")
            healthy, details = await app.health()
            assert not healthy and any(p.startswith("nats:") for p in details["problems"])
            alice = await fake_server.user("alice", channel=channel)
            await alice.chat("!ping")  # the room and its plugins carry on without NATS
            await wait_until(lambda: "pong" in fake_server.chat_from(channel, BOT_NAME), 10,
                             "pong while NATS is down")
            natsd.start()
            await wait_until(lambda: app.bridge.connected, 20, "bridge reconnected")
            # Whatever changed meanwhile is in the KV once NATS is back.
            nc = await nats.connect(natsd.url)
            try:
                async def alice_listed():
                    try:
                        kv = await nc.jetstream().key_value(f"kryten_{channel}_userlist")
                        users = json.loads((await kv.get("users")).value)
                    except Exception:  # JetStream still recovering its store
                        return False
                    return "alice" in {u["name"] for u in users}
                await wait_until(alice_listed, 10, "userlist KV rewritten after the outage")
            finally:
                await nc.close()
            healthy, details = await app.health()
            assert not any(p.startswith("nats:") for p in details["problems"])


async def test_service_registry_and_group_restart(fake_server, migrated_dsn, tmp_path, channel):
    from tests.nats_server import own_nats_server

    # A private server: a group restart goes to every bridge on the server it is sent to.
    with own_nats_server() as natsd:
        async with bridged_bot(fake_server, migrated_dsn, tmp_path, channel, natsd.url) as bot:
            nc = await nats.connect(natsd.url)
            try:
                await nc.publish("kryten.lifecycle.probe.startup", json.dumps(
                    {"service": "probe", "version": "1.0", "hostname": "h",
                     "metadata": {"endpoints": {"health": {"port": 9, "path": "/h"}}}}).encode())
                await nc.flush()

                async def listed():
                    answers = await replies(natsd.url, {"command": "system.services"}, wait=0.3)
                    services = answers[0]["data"]["services"] if answers else []
                    return [s for s in services if s["name"] == "probe"]
                probe = (await wait_until(listed, 10, "probe in system.services"))[0]
                assert probe["status"] == "active" and probe["version"] == "1.0"
                assert probe["endpoints"]["health"]["port"] == 9
                # The group restart stops daz (a supervisor starts it again), as it stops the
                # robot.
                await nc.publish("kryten.lifecycle.group.restart", json.dumps(
                    {"initiator": "test", "reason": "new config", "delay_seconds": 0}).encode())
                await nc.flush()
                await wait_until(lambda: bot.app.stop_requested.is_set(), 10,
                                 "shutdown requested")
            finally:
                await nc.close()
