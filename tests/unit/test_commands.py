"""Command parsing and the registry."""
import pytest

from daz.commands import CommandConflict, CommandRegistry, UsageError, parse_command
from daz.plugins.base import Plugin, PluginConfig, command


@pytest.mark.parametrize("text,name,args", [
    ("!tell bob don't forget", "tell", ["bob", "don't", "forget"]),
    ('!tell bob "see you" later', "tell", ["bob", "see you", "later"]),
    ("!say 'two words' it's", "say", ["two words", "it's"]),
    ("!PING", "ping", []),
    ("!tell\tbob  hi", "tell", ["bob", "hi"]),
    ('!x "unterminated quote', "x", ['"unterminated', "quote"]),
    ("!" + "a " * 500, "a", ["a"] * 499),  # no silent argument cap
])
def test_parse(text, name, args):
    parsed = parse_command(text)
    assert parsed is not None and parsed.name == name and parsed.args == args


@pytest.mark.parametrize("text", ["hello", "!", "! ping", "", "?ping"])
def test_not_commands(text):
    assert parse_command(text) is None


def test_other_prefix():
    assert parse_command("$np", prefix="$").name == "np"


class A(Plugin):
    name = "a"

    @command("tell", aliases=("msg",), usage="!tell <user> <message>")
    async def tell(self, ctx, user, *message):
        pass

    @command("ping")
    async def ping(self, ctx):
        pass


class B(Plugin):
    name = "b"

    @command("msg")
    async def msg(self, ctx):
        pass


def _ctx():
    from types import SimpleNamespace
    return SimpleNamespace(config=PluginConfig(), logger=None)


def test_registry_arity_and_conflicts():
    reg = CommandRegistry()
    a = A(_ctx())
    for attr, spec in A.declared_commands():
        reg.register("a", spec, getattr(a, attr))
    tell = reg.resolve("MSG")
    assert tell.name == "tell" and (tell.min_args, tell.max_args) == (1, None)
    with pytest.raises(UsageError, match="!tell <user> <message>"):
        tell.bind([])
    assert reg.resolve("ping").bind([]) == []
    with pytest.raises(UsageError):
        reg.resolve("ping").bind(["extra"])
    b = B(_ctx())
    with pytest.raises(CommandConflict, match="'a' and 'b'"):
        reg.register("b", B.declared_commands()[0][1], b.msg)
