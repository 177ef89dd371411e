"""Command dispatch is core: it runs with any set of plugins, and knows who an admin is."""
from __future__ import annotations

import pytest

from daz.commands import CommandContext
from daz.config import ConfigError
from daz.events import CommandExecuted
from daz.plugins.base import Plugin, command
from daz.plugins.basics import Basics
from tests.plugin_kit import Kit

KELVIN = "\u212a"  # KELVIN SIGN: Python's lower() makes it "k", CyTube never would


class Switches(Plugin):
    name = "switches"

    @command("lockdown", admin_only=True)
    async def lockdown(self, ctx: CommandContext) -> None:
        await ctx.reply("locked")


async def test_commands_run_without_the_eventfilter_plugin():
    async with Kit({"basics": Basics}) as k:
        seen: list[CommandExecuted] = []
        k.bus.subscribe("daz.command.executed", _collect(seen), owner="test")
        k.user("alice", 0)
        await k.chat("alice", "!ping")
        assert k.room.said == ["pong"]
        assert [(e.command, e.outcome) for e in seen] == [("ping", "ok")]


def _collect(out):
    async def handler(event):
        out.append(event)
    return handler


@pytest.mark.parametrize("who, rank, allowed", [
    ("Kate", 1, True),          # the admin, logged in
    ("kate", 3, True),          # names compare case-insensitively (ASCII)
    ("Kate", 0, False),         # a guest who took the unregistered admin name
    (f"{KELVIN}ate", 1, False),  # a look-alike letter is another name
])
async def test_who_counts_as_an_admin(who, rank, allowed):
    async with Kit({"switches": Switches}, admins=["Kate"]) as k:
        k.user(who, rank)
        await k.chat(who, "!lockdown")
        if allowed:
            assert k.room.said == ["locked"] and k.room.pms == []
        else:
            assert k.room.said == []
            assert k.room.pms == [(who, "!lockdown is for bot admins only.")]


async def test_an_admin_who_is_not_in_the_room_is_no_admin():
    async with Kit({"switches": Switches}, admins=["Kate"]) as k:
        await k.pm("Kate", "!lockdown")  # a PM from a name the user list does not hold
        assert k.room.said == [] and k.room.pms == [("Kate", "!lockdown is for bot admins only.")]


async def test_the_prefix_is_a_core_setting_and_the_go_key_still_works():
    go = await Kit.start({"basics": Basics}, sections={"eventfilter": {"command_prefix": "?"}})
    go.user("alice", 0)
    await go.chat("alice", "!ping")
    await go.chat("alice", "?ping")
    assert go.room.said == ["pong"]
    await go.stop()

    core = await Kit.start({"basics": Basics}, sections={"eventfilter": {"command_prefix": "?"}},
                           core={"commands": {"prefix": "$"}})
    core.user("alice", 0)
    await core.chat("alice", "?ping")
    await core.chat("alice", "$ping")
    assert core.room.said == ["pong"]
    await core.stop()


async def test_a_bad_go_prefix_is_a_config_error_naming_the_key():
    with pytest.raises(ConfigError, match=r"core\.commands\.prefix"):
        await Kit.start({"basics": Basics}, sections={"eventfilter": {"command_prefix": ""}})
