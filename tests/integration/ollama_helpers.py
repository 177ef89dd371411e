"""Shared set-up for the ollama plugin tests: a Kit whose room behaves like the outbox."""
from __future__ import annotations

import itertools

import pytest

from daz.cytube.events import parse_event
from daz.events import MessageSent
from daz.plugins.ollama import Ollama
from tests.fakes.ollama import FakeOllama
from tests.plugin_kit import Kit

BOT = "daz"
_times = itertools.count(1_760_000_000_000)  # CyTube ms; unique per line across the session


@pytest.fixture
async def fake_ollama():
    server = FakeOllama(reply="g'day mate")
    await server.start()
    yield server
    await server.stop()


def section(server_url: str, **overrides) -> dict:
    base = {"enabled": True, "ollama_url": server_url, "model": "test-model", "timeout": 2,
            "rate_limit_seconds": 0, "channel_rate_limit_seconds": 0}
    base.update(overrides)
    return base


async def start(db, server_url: str, *, clock=None, bus=None, **overrides) -> Kit:
    kit = await Kit.start({"ollama": Ollama}, sections={"ollama": section(server_url, **overrides)},
                          db=db, clock=clock, bus=bus)
    kit.room.state.bot_name = BOT
    kit.room.say_flags = []  # user_input of every say()
    plain_say = kit.room.say

    async def say(text, *, user_input=True):
        # The real outbox reports every line it sends; the plugin learns its own lines from that.
        kit.room.say_flags.append(user_input)
        await plain_say(text, user_input=user_input)
        await kit.bus.publish(MessageSent(room_id=kit.room.id, channel=kit.room.channel,
                                          text=text))

    kit.room.say = say
    return kit


def chat_event(kit: Kit, user: str, msg: str, *, time_ms: int | None = None, **flags):
    event = parse_event("chatMsg", {"username": user, "msg": msg, "meta": {},
                                    "time": time_ms if time_ms is not None else next(_times)},
                        room_id=kit.room.id, channel=kit.room.channel)
    event.received_at = kit.manager.clock.time()
    for key, value in flags.items():
        setattr(event, key, value)
    return event


async def done(kit: Kit) -> None:
    """Every event handled, every reply finished, every MessageSent it caused handled."""
    await kit.settle()
    await kit.plugin("ollama").quiesce()
    await kit.settle()


async def chat(kit: Kit, user: str, msg: str, **flags) -> None:
    await kit.bus.publish(chat_event(kit, user, msg, **flags))
    await done(kit)
