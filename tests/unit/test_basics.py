"""!help, !about, !uptime, !ping through the real dispatcher."""
import contextlib

from daz.plugins.base import Plugin, command
from daz.plugins.basics import Basics, format_duration
from daz.plugins.eventfilter import EventFilter
from tests.plugin_kit import Kit


class Extra(Plugin):
    name = "extra"

    @command("kick", min_rank=2, usage="!kick <user>", description="Remove someone",
             aliases=("boot",))
    async def kick(self, ctx, user):
        pass

    @command("reload", admin_only=True, description="Reload things")
    async def reload(self, ctx):
        pass


@contextlib.asynccontextmanager
async def kit(**kw):
    async with Kit({"eventfilter": EventFilter, "basics": Basics, "extra": Extra}, **kw) as k:
        k.user("alice", 1)
        k.user("mia", 3)
        yield k


async def test_help_lists_only_what_the_caller_may_use_by_pm():
    async with kit(admins=["root"]) as k:
        k.user("root", 1)  # an admin counts only logged in with an account (rank 1 or more)
        await k.chat("alice", "!help")
        await k.chat("mia", "!help")
        await k.chat("root", "!help")
        assert k.room.said == []
        by = dict(k.room.pms)
        assert by["alice"].startswith("Commands: !about, !help, !ping, !uptime.")
        assert "!kick" in by["mia"] and "!reload" not in by["mia"] and "!command" not in by["mia"]
        assert "!kick" in by["root"] and "!reload" in by["root"] and "!command" in by["root"]


async def test_help_for_one_command_and_hidden_ones():
    async with kit() as k:
        await k.pm("mia", "!help !boot")
        assert k.room.pms[-1] == ("mia", "!kick <user> - Remove someone. (also !boot; rank 2+)")
        await k.pm("alice", "!commands kick")  # alias of help; a rank-1 user must not learn of it
        assert k.room.pms[-1] == ("alice", "No command called !kick.")


async def test_help_leaves_out_switched_off_commands():
    async with kit() as k:
        k.commands.resolve("uptime").enabled = False
        await k.chat("alice", "!help")
        assert "!uptime" not in k.room.pms[-1][1]


async def test_ping_about_uptime():
    async with kit() as k:
        await k.chat("alice", "!ping")
        await k.chat("alice", "!about")
        await k.pm("alice", "!up")
        assert k.room.said[0] == "pong"
        assert k.room.said[1].startswith("daz 0.1.0, a bot for this CyTube channel. Up ")
        assert k.room.pms[-1][1].startswith("Up ") and k.room.pms[-1][1].endswith("s.")


async def test_about_shows_pages_and_source_when_configured():
    async with Kit({"eventfilter": EventFilter, "basics": Basics},
                   sections={"basics": {"source_url": "https://example.org/daz"}}) as k:
        k.manager.get("basics").base_url = "https://bot.example.org"
        await k.chat("x", "!about")
        assert "Pages: https://bot.example.org/" in k.room.said[0]
        assert k.room.said[0].endswith("Source: https://example.org/daz")


def test_format_duration():
    assert format_duration(93784) == "1d 2h 3m 4s"
    assert format_duration(93784, with_seconds=False) == "1d 2h 3m"
    assert format_duration(0) == "0s"
    assert format_duration(30, with_seconds=False) == "0m"
    assert format_duration(3600) == "1h"


async def test_two_hundred_pings_from_different_users_each_get_a_pong():
    # Speed is measured by bench/bench_ping.py; here only that none is lost or doubled.
    async with Kit({"eventfilter": EventFilter, "basics": Basics}) as k:
        for i in range(200):
            await k.chat(f"user{i}", "!ping", settle=False)
        await k.settle()
        assert k.room.said == ["pong"] * 200
