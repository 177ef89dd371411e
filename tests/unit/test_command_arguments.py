"""Arguments converted from annotations, subcommands and usage lines, through the real
dispatcher (a Kit) so the replies are the ones people get."""
from __future__ import annotations

import contextlib
import re
from typing import Literal

import pytest

from daz.commands import CommandRegistry, UsageError, User
from daz.commands.arguments import ArgumentError, Signature
from daz.config import ConfigError
from daz.plugins.base import Plugin, command
from tests.plugin_kit import Kit


class Toy(Plugin):
    name = "toy"

    def __init__(self, ctx):
        super().__init__(ctx)
        self.calls: list[tuple] = []

    @command("roll")
    async def roll(self, ctx, sides: int = 6, times: float = 1.0) -> None:
        self.calls.append(("roll", sides, times))

    @command("mode", usage="!mode on|off")
    async def mode(self, ctx, state: Literal["on", "off"]) -> None:
        self.calls.append(("mode", state))

    @command("poke")
    async def poke(self, ctx, who: User, *words: str) -> None:
        self.calls.append(("poke", who, who.here is not None, words))

    @command("sum")
    async def sum(self, ctx, *numbers: int) -> None:
        self.calls.append(("sum", numbers))

    @command("note")
    async def note(self, ctx, who: str, *message: str) -> None:
        self.calls.append(("note", who, message, ctx.subcommand))

    @note.subcommand("drop", description="Forget one")
    async def note_drop(self, ctx, number: int) -> None:
        self.calls.append(("drop", number, ctx.rest, ctx.subcommand))

    @note.subcommand("purge", admin_only=True)
    async def note_purge(self, ctx) -> None:
        self.calls.append(("purge",))

    @command("switch", require_subcommand=True)
    async def switch(self, ctx) -> None:
        raise AssertionError("never runs without a subcommand")

    @switch.subcommand("flip", aliases=("toggle",))
    async def switch_flip(self, ctx, times: int | None = None) -> None:
        self.calls.append(("flip", times))


@contextlib.asynccontextmanager
async def kit(**kw):
    async with Kit({"toy": Toy}, **kw) as k:
        k.user("alice", rank=1)
        k.user("Bob", rank=1)
        yield k


async def said_to(k, line, user="alice"):
    """The refusal PM a line gets (None when the command ran)."""
    before = len(k.room.pms)
    k.manager.dispatcher.notices._last.clear()  # every line here may get its notice
    await k.chat(user, line)
    return k.room.pms[-1][1] if len(k.room.pms) > before else None


async def test_numbers_are_converted_and_bad_ones_named_in_the_usage_line():
    async with kit() as k:
        toy = k.plugin("toy")
        assert await said_to(k, "!roll") is None
        assert await said_to(k, "!roll 20 2.5") is None
        assert await said_to(k, "!roll -3 1e2") is None
        assert toy.calls == [("roll", 6, 1.0), ("roll", 20, 2.5), ("roll", -3, 100.0)]
        assert await said_to(k, "!roll abc") == (
            'Usage: !roll [sides] [times] (sides: "abc" is not a whole number)')
        for bad in ("1.5", "1_000", "٣", "9" * 16):
            assert "is not a whole number" in await said_to(k, f"!roll {bad}")
        for bad in ("nan", "inf", "1e999", "0x10"):
            assert await said_to(k, f"!roll 6 {bad}") == (
                f'Usage: !roll [sides] [times] (times: "{bad}" is not a number)')
        assert await said_to(k, "!roll 1 2 3") == (
            'Usage: !roll [sides] [times] (one word too many: "3")')
        assert len(toy.calls) == 3  # nothing ran for the bad lines


async def test_choices_are_case_insensitive_and_the_declared_spelling_arrives():
    async with kit() as k:
        assert await said_to(k, "!mode ON") is None
        assert k.plugin("toy").calls == [("mode", "on")]
        assert await said_to(k, "!mode maybe") == (
            'Usage: !mode on|off (state: "maybe" is not one of on, off)')
        assert await said_to(k, "!mode") == "Usage: !mode on|off"  # a bare command: just the usage


async def test_user_arguments_resolve_to_the_name_in_the_room_else_as_typed():
    async with kit() as k:
        toy = k.plugin("toy")
        await said_to(k, "!poke @BOB: hello there")
        await said_to(k, "!poke carol_99")
        assert toy.calls == [("poke", "Bob", True, ("hello", "there")),
                             ("poke", "carol_99", False, ())]
        assert isinstance(toy.calls[0][1], User)
        # CyTube compares names ASCII case-insensitively: a look-alike or non-ASCII name is none.
        for bad in ("BÖB", "bad/name", "x" * 21, "ＢＯＢ"):
            reply = await said_to(k, f"!poke {bad}")
            assert reply.startswith("Usage: !poke <who> [words...] (who: \"") and reply.endswith(
                'is not a CyTube name (1-20 letters, digits, _ or -))'), reply
        assert await said_to(k, "!poke") == "Usage: !poke <who> [words...]"
        assert len(toy.calls) == 2


async def test_every_remaining_word_is_converted_for_a_typed_star_parameter():
    async with kit() as k:
        await said_to(k, "!sum 1 2 3")
        assert k.plugin("toy").calls == [("sum", (1, 2, 3))]
        assert await said_to(k, "!sum 1 two") == (
            'Usage: !sum [numbers...] (numbers: "two" is not a whole number)')


async def test_subcommands_route_by_their_first_word_and_fall_back_to_the_command():
    async with kit(admins=["Bob"]) as k:
        toy = k.plugin("toy")
        await said_to(k, "!note DROP 5  now?")  # too many for drop: a note for someone called drop
        await said_to(k, "!note drop 7")
        await said_to(k, "!note bob hi")
        assert toy.calls == [("note", "DROP", ("5", "now?"), None), ("drop", 7, "7", "drop"),
                             ("note", "bob", ("hi",), None)]
        assert await said_to(k, "!note drop x") == (
            'Usage: !note drop <number> (number: "x" is not a whole number)')
        assert await said_to(k, "!note purge") == "!note purge is for bot admins only."
        assert await said_to(k, "!note purge", user="Bob") is None
        assert toy.calls[-1] == ("purge",)


async def test_a_command_that_requires_a_subcommand_names_them():
    async with kit() as k:
        assert await said_to(k, "!switch") == "Usage: !switch flip [times]"
        assert await said_to(k, "!switch flop") == (
            'Usage: !switch flip [times] ("flop" is not one of flip)')
        assert await said_to(k, "!switch flip 1 2") == (
            'Usage: !switch flip [times] (one word too many: "2")')  # no fall-back to !switch
        assert await said_to(k, "!switch toggle 3") is None
        assert await said_to(k, "!switch flip") is None
        assert k.plugin("toy").calls == [("flip", 3), ("flip", None)]


def test_usage_lines_and_counts_come_from_the_signature():
    async def handler(ctx, who: User, mode: Literal["a", "b"], n: int = 1, *rest: str):
        pass

    sig = Signature(handler)
    assert (sig.min_args, sig.max_args) == (2, None)
    assert sig.usage("!x") == "!x <who> a|b [n] [rest...]"
    with pytest.raises(ArgumentError, match=re.escape("missing a|b")):
        sig.convert(["bob"], None)


async def test_an_unsupported_annotation_stops_start_up_naming_command_and_parameter():
    class Bad(Plugin):
        name = "bad"

        @command("bad")
        async def bad(self, ctx, items: list[int]) -> None:
            pass

    with pytest.raises(ConfigError, match="command bad \\(plugin 'bad'\\): parameter 'items'"):
        await Kit.start({"bad": Bad})


def test_a_subcommand_word_declared_twice_is_an_error():
    class Twice(Plugin):
        name = "twice"

        @command("t")
        async def t(self, ctx) -> None:
            pass

        @t.subcommand("a")
        async def t_a(self, ctx) -> None:
            pass

        @t.subcommand("b", aliases=("a",))
        async def t_b(self, ctx) -> None:
            pass

    from types import SimpleNamespace

    from daz.plugins.base import PluginConfig
    plugin = Twice(SimpleNamespace(config=PluginConfig(), logger=None))
    with pytest.raises(ValueError, match="subcommand t 'a' is declared twice"):
        CommandRegistry().register("twice", Twice.declared_commands()[0][1], plugin.t)
    assert str(UsageError("!t a")) == "!t a"
