"""The plugin manager: config validation, isolation of failing plugins, wiring."""
import asyncio
import logging

import pytest

from daz.bus import Bus
from daz.clock import Clock, FakeClock
from daz.config import ConfigError, load_config
from daz.cytube.events import ChatMessage, parse_event
from daz.cytube.rooms import Rooms
from daz.metrics import Metrics
from daz.plugins.base import EverySpec, Plugin, PluginConfig, command, every, in_order, on
from daz.plugins.manager import PluginManager
from tests.fakes.no_database import database_that_never_answers


class CountingConfig(PluginConfig):
    step: int = 1


class Counting(Plugin):
    name = "counting"
    Config = CountingConfig

    async def setup(self):
        self.seen = []
        self.ticks = 0

    @on(ChatMessage)
    async def chat(self, event):
        if event.text == "explode":
            raise RuntimeError("handler bug")
        self.seen.append(event.text)

    @every(seconds=0.05)
    async def tick(self):
        self.ticks += self.config.step
        if self.ticks == 2:
            raise RuntimeError("timer bug")

    @command("count")
    async def count(self, ctx):
        pass


class BrokenSetup(Plugin):
    name = "broken"

    async def setup(self):
        raise RuntimeError("cannot start")

    @command("broken")
    async def broken(self, ctx):
        pass


def manager(plugins=None, clock=None):
    config = load_config(None, env={}, overrides={"channel": "c"})
    config.plugins.update(plugins or {})
    clock = clock or Clock()
    metrics = Metrics()
    return PluginManager(config=config, bus=Bus(metrics=metrics, clock=clock), rooms=Rooms(),
                         db=database_that_never_answers(), http=None, clock=clock,
                         metrics=metrics, data_dir=None)


def chat(text, **flags):
    e = parse_event("chatMsg", {"username": "u", "msg": text, "meta": {}, "time": 1},
                    room_id="r", channel="c")
    for k, v in flags.items():
        setattr(e, k, v)
    return e


async def test_failing_setup_disables_only_that_plugin_and_handlers_timers_recover(caplog):
    clock = FakeClock()
    m = manager(clock=clock)
    chosen = m.select({"counting": Counting, "broken": BrokenSetup})
    with caplog.at_level(logging.ERROR):
        await m.start(chosen)
    assert m.status()["broken"]["failed"].startswith("setup failed")
    assert m.commands.resolve("broken") is None and m.commands.resolve("count") is not None
    for text in ("a", "explode", "b"):
        await m.bus.publish(chat(text))
    await m.bus.publish(chat("replayed", replayed=True))
    await m.bus.drain(2)
    counting = m.get("counting")
    assert counting.seen == ["a", "b"]  # the exception was isolated; ignored lines filtered
    await clock.run(0.325)  # six ticks of 0.05 s, in virtual time
    assert counting.ticks == 6  # the timer kept running after raising
    assert m.status()["counting"]["errors"] == 2  # the handler's and the timer's
    await m.stop()


async def test_bad_plugin_config_names_the_key():
    m = manager({"counting": {"step": "many"}})
    with pytest.raises(ConfigError, match=r"plugins\.counting\.step"):
        m.select({"counting": Counting})


async def test_disabled_in_config_is_not_started():
    m = manager({"counting": {"enabled": False}})
    assert m.select({"counting": Counting}) == []


async def test_duplicate_command_across_plugins_stops_start_up():
    class Other(Plugin):
        name = "other"

        @command("count")
        async def count(self, ctx):
            pass

    m = manager()
    with pytest.raises(ConfigError, match="'counting' and 'other'"):
        await m.start(m.select({"counting": Counting, "other": Other}))


async def test_in_order_handlers_get_only_the_classes_they_name_in_arrival_order():
    from daz.cytube.events import UserJoined, UserLeft

    class Picky(Plugin):
        name = "picky"

        async def setup(self):
            self.seen = []

        async def _joined(self, event):
            await asyncio.sleep(0.01)  # a slower handler must not let the leave overtake it
            self.seen.append(("joined", event.username))

        async def _left(self, event):
            self.seen.append(("left", event.username))

        event = in_order({UserJoined: _joined, UserLeft: _left})

    m = manager()
    await m.start(m.select({"picky": Picky}))
    await m.bus.publish(chat("not for picky"))
    for name, payload in (("addUser", {"name": "v", "rank": 1}), ("userLeave", {"name": "v"}),
                          ("addUser", {"name": "w", "rank": 1})):
        await m.bus.publish(parse_event(name, payload, room_id="r", channel="c"))
    await m.bus.drain(2)
    assert m.get("picky").seen == [("joined", "v"), ("left", "v"), ("joined", "w")]
    assert m.status()["picky"]["handled"] == 3  # the chat line was never queued for it
    await m.stop()


class PacingConfig(PluginConfig):
    tick_seconds: float = 3600.0  # the default would never tick during a test
    first_seconds: float = 3600.0


class Pacing(Plugin):
    name = "pacing"
    Config = PacingConfig

    async def setup(self):
        self.ticks = 0

    @every(config="tick_seconds", initial_delay="first_seconds")
    async def tick(self):
        self.ticks += 1


async def test_a_timer_takes_its_interval_and_first_delay_from_the_plugin_config():
    clock = FakeClock()
    m = manager({"pacing": {"tick_seconds": 20, "first_seconds": 10}}, clock=clock)
    await m.start(m.select({"pacing": Pacing}))
    pacing = m.get("pacing")
    assert m._resolved_timers(pacing) == [
        ("tick", EverySpec(seconds=20, initial_delay=10))]
    await clock.run(9.9)
    assert pacing.ticks == 0
    await clock.run(0.1)  # the first delay is over: 10 s, not the 3600 s default
    assert pacing.ticks == 1
    await clock.run(40)  # then every 20 s
    assert pacing.ticks == 3
    await m.stop()


@pytest.mark.parametrize("section, key", [
    ({"tick_seconds": 0}, "tick_seconds"),
    ({"tick_seconds": -5}, "tick_seconds"),
    ({"first_seconds": 0}, "first_seconds"),
])
async def test_a_timer_interval_from_config_that_is_not_positive_stops_start_up(section, key):
    m = manager({"pacing": section})
    with pytest.raises(ConfigError, match=rf"plugins\.pacing\.{key}: timer 'tick'"):
        await m.start(m.select({"pacing": Pacing}))
    assert m.loaded == {}  # refused before any plugin's setup ran


async def test_a_timer_naming_a_config_key_that_does_not_exist_stops_start_up():
    class Misnamed(Plugin):
        name = "misnamed"

        @every(config="refresh_seconds")
        async def tick(self):
            pass

    m = manager()
    with pytest.raises(ConfigError, match=r"plugins\.misnamed\.refresh_seconds: .*does not have"):
        await m.start(m.select({"misnamed": Misnamed}))


def test_every_takes_a_fixed_interval_or_a_config_key_not_both():
    with pytest.raises(ValueError, match="not both"):
        every(seconds=5, config="tick_seconds")
    with pytest.raises(ValueError, match="positive"):
        every()
