"""The command dispatcher (core) with the eventfilter plugin: parsing from real events,
permissions, cooldowns, refusals, rules."""
import asyncio

import pytest

from daz.clock import FakeClock
from daz.commands import CommandContext
from daz.config import ConfigError
from daz.cytube.events import parse_event
from daz.events import CommandExecuted
from daz.plugins.base import Plugin, command, on
from daz.plugins.basics import Basics
from daz.plugins.eventfilter import EventFilter
from tests.e2e.harness import wait_until
from tests.plugin_kit import Kit


class Toy(Plugin):
    name = "toy"

    async def setup(self):
        self.calls = []
        self.forwarded = []
        self.gate = asyncio.Event()  # !slow waits for it

    @command("tell", aliases=("msg",), cooldown=5, usage="!tell <user> <message>")
    async def tell(self, ctx: CommandContext, user: str, *message: str) -> None:
        self.calls.append((user, message))
        await ctx.reply(f"{user}: {' '.join(message)}")

    @command("mod", min_rank=2)
    async def mod(self, ctx):
        await ctx.reply("mod ok")

    @command("adm", admin_only=True)
    async def adm(self, ctx):
        await ctx.reply("admin ok")

    @command("boom")
    async def boom(self, ctx):
        raise RuntimeError("kaboom")

    @command("secret", pm_only=True)
    async def secret(self, ctx):
        await ctx.reply("psst")

    @command("slow")
    async def slow(self, ctx):
        await self.gate.wait()
        await ctx.reply("slow done")

    @on("plugin.toy.forward")
    async def forward(self, event):
        self.forwarded.append(event.data)


async def kit(**kw):
    k = await Kit.start({"eventfilter": EventFilter, "basics": Basics, "toy": Toy}, **kw)
    k.user("alice", 0)
    k.user("bob", 0)
    k.user("mia", 2)
    return k


async def test_quotes_apostrophes_and_html_escaped_input():
    k = await kit()
    toy = k.plugin("toy")
    await k.chat("alice", "!tell bob &lt;3")
    await k.chat("bob", "!tell alice don&#39;t &quot;go now&quot;")
    assert toy.calls == [("bob", ("<3",)), ("alice", ("don't", "go now"))]
    assert k.room.said == ["bob: <3", "alice: don't go now"]
    await k.stop()


async def test_low_rank_refused_with_one_pm_and_nothing_run():
    k = await kit()
    for _ in range(3):
        await k.chat("alice", "!mod")
    assert k.room.said == []
    assert k.room.pms == [("alice", "!mod needs rank 2 (you have 0).")]
    await k.chat("mia", "!mod")
    assert k.room.said == ["mod ok"]
    await k.stop()


async def test_cooldown_spam_gets_one_reply_and_one_notice():
    k = await kit()
    for _ in range(10):
        await k.chat("alice", "!ping", settle=False)
    await k.settle()
    assert k.room.said == ["pong"]
    assert len(k.room.pms) == 1 and k.room.pms[0][0] == "alice"
    assert "wait" in k.room.pms[0][1]
    # Someone else is not affected by alice's cooldown.
    await k.chat("bob", "!ping")
    assert k.room.said == ["pong", "pong"]
    await k.stop()


async def test_aliases_share_a_cooldown_and_it_expires():
    clock = FakeClock()
    k = await kit(clock=clock)
    await k.chat("alice", "!tell bob hi")
    await k.chat("alice", "!msg bob again")
    assert k.plugin("toy").calls == [("bob", ("hi",))]
    clock.advance(5.1)
    await k.chat("alice", "!msg bob later")
    assert k.plugin("toy").calls[-1] == ("bob", ("later",))
    await k.stop()


async def test_refusal_notices_are_rate_limited_per_user():
    clock = FakeClock()
    k = await kit(clock=clock)
    await k.chat("alice", "!adm")
    await k.chat("alice", "!mod")
    await k.chat("alice", "!tell")
    assert len(k.room.pms) == 1
    clock.advance(10.1)
    await k.chat("alice", "!tell")
    assert k.room.pms[-1] == ("alice", "Usage: !tell <user> <message>")
    assert len(k.room.pms) == 2
    await k.stop()


async def test_unknown_commands_get_no_reply():
    k = await kit()
    outcomes = []
    k.bus.subscribe(CommandExecuted.topic_name, lambda e: _append(outcomes, e))
    await k.chat("alice", "!nosuchthing at all")
    assert k.room.said == [] and k.room.pms == []
    assert [o.outcome for o in outcomes] == ["unknown"]
    # User text never becomes a metric label.
    assert k.metrics.registry.get_sample_value(
        "daz_commands_total", {"command": "(unknown)", "outcome": "unknown"}) == 1
    await k.stop()


async def _append(out, e):
    out.append(e)


async def test_admins_from_core_and_plugin_config_case_insensitive():
    k = await kit(admins=["Mia"], sections={"eventfilter": {"admin_users": ["ALICE"]}})
    k.user("alice", 1)  # admins count when logged in with an account
    await k.chat("alice", "!adm")
    await k.chat("MIA", "!adm")
    await k.chat("bob", "!adm")
    assert k.room.said == ["admin ok", "admin ok"]
    assert k.room.pms == [("bob", "!adm is for bot admins only.")]
    await k.stop()


async def test_an_admin_must_be_here_and_logged_in_to_a_registered_account():
    k = await kit(admins=["kate", "zed"])
    k.user("kate", 0)  # a guest who took the admin's (unregistered) name
    await k.chat("kate", "!adm")
    await k.pm("zed", "!adm")  # listed, but not in the room
    k.user("kate", 1)  # the registered kate logged in
    await k.chat("kate", "!adm", settle=True)
    assert k.room.said == ["admin ok"]
    assert k.room.pms == [("kate", "!adm is for bot admins only."),
                          ("zed", "!adm is for bot admins only.")]
    await k.stop()


async def test_admin_names_compare_as_cytube_compares_them():
    kelvin_kate = "\u212aate"  # "Kate" with a Kelvin sign: str.lower() makes it "kate"
    k = await kit(admins=["Kate", "\u212aarl"])
    k.user("kate", 3)
    k.user(kelvin_kate, 3)
    k.user("karl", 3)
    await k.chat(kelvin_kate, "!adm")
    await k.chat("karl", "!adm")  # a non-ASCII name in the config never matches anyone
    assert k.room.said == []
    await k.chat("KATE", "!adm")
    assert k.room.said == ["admin ok"]
    await k.stop()


async def test_handler_error_is_reported_counted_and_isolated():
    k = await kit()
    seen = []
    k.bus.subscribe(CommandExecuted.topic_name, lambda e: _append(seen, e))
    await k.chat("alice", "!boom")
    await k.chat("alice", "!ping")
    assert k.room.pms == [("alice", "Sorry, something went wrong with !boom.")]
    assert k.room.said == ["pong"]
    assert [(e.command, e.outcome) for e in seen] == [("boom", "error"), ("ping", "ok")]
    assert "kaboom" in seen[0].detail
    assert k.metrics.registry.get_sample_value(
        "daz_commands_total", {"command": "boom", "outcome": "error"}) == 1
    await k.stop()


async def test_pms_are_commands_answered_by_pm_with_the_room_rank():
    k = await kit()
    await k.pm("mia", "!mod")
    await k.pm("alice", "!secret")
    await k.chat("bob", "!secret")
    assert ("mia", "mod ok") in k.room.pms and ("alice", "psst") in k.room.pms
    assert ("bob", "!secret works only in a PM to me.") in k.room.pms
    assert k.room.said == []
    await k.stop()


async def test_replayed_own_and_bot_lines_are_never_commands():
    k = await kit()
    await k.chat("alice", "!ping", replayed=True)
    await k.chat("dazbot", "!ping")
    await k.chat("alice", "!ping", own=True)
    await k.pm("alice", "!ping", own=True)
    assert k.room.said == [] and k.room.pms == []
    await k.stop()


async def test_a_slow_command_does_not_delay_the_next_one():
    k = await kit()
    await k.chat("alice", "!slow", settle=False)
    await k.chat("bob", "!ping", settle=False)
    await wait_until(lambda: k.room.said, 5, "the pong")
    assert k.room.said == ["pong"]  # answered while !slow is still running
    k.plugin("toy").gate.set()
    await k.settle()
    assert k.room.said == ["pong", "slow done"]
    await k.stop()


async def test_disable_and_enable_in_memory_while_the_database_does_not_answer():
    # Plugins always have a database; this kit's never answers (and no retry plugin runs):
    # the switch holds in memory all the same, and the owner is told it is not saved.
    k = await kit(admins=["mia"])
    k.user("mia", 2)
    await k.chat("mia", "!command disable !tell")
    assert k.room.said[-1] == "!tell is off. (not saved: the database did not answer)"
    await k.chat("alice", "!msg bob hi")
    assert k.room.pms == [("alice", "!tell is switched off.")]
    await k.chat("mia", "!command list")
    assert k.room.said[-1] == "Switched off: !tell"
    await k.chat("mia", "!command disable command")
    assert "not doing it" in k.room.pms[-1][1]
    await k.chat("mia", "!command enable msg")
    await k.chat("bob", "!tell alice hi")
    assert k.room.said[-1] == "alice: hi"
    await k.stop()


async def test_duplicate_command_names_stop_start_up_naming_both():
    class Clash(Plugin):
        name = "clash"

        @command("pong", aliases=("ping",))
        async def p(self, ctx):
            pass

    with pytest.raises(ConfigError, match="'basics' and 'clash'"):
        await Kit.start({"eventfilter": EventFilter, "basics": Basics, "clash": Clash})


async def test_rules_forward_matching_events_to_the_target_plugin():
    rules = [{"event_type": "chatMsg", "target_plugin": "toy",
              "conditions": {"text": "(?i)\\bdaz\\b", "username": "al"}},
             {"EventType": "cytube.event.addUser", "TargetPlugin": "toy"},  # Go spelling
             {"event_type": "chatMsg", "target_plugin": "toy", "enabled": False}]
    k = await kit(sections={"eventfilter": {"routing_rules": rules}})
    toy = k.plugin("toy")
    await k.chat("alice", "hello DAZ how are you")
    await k.chat("bob", "hello daz")  # username condition fails
    await k.chat("alice", "dazzling")  # word boundary: no match
    await k.chat("alice", "daz again", replayed=True)  # history is never forwarded
    await k.publish(parse_event("addUser", {"name": "zed", "rank": 0}, room_id="testchan",
                                channel="testchan"))
    assert [(d["event_type"], d.get("text") or d["username"]) for d in toy.forwarded] == [
        ("cytube.event.chatMsg", "hello DAZ how are you"), ("cytube.event.addUser", "zed")]
    assert toy.forwarded[0]["event"].username == "alice"
    await k.stop()


async def test_bad_rule_is_skipped_not_fatal(caplog):
    k = await kit(sections={"eventfilter": {"rules": [
        {"event_type": "chatMsg", "target_plugin": "toy", "conditions": {"text": "(unclosed"}}]}})
    assert k.plugin("eventfilter").rules == []
    assert "bad regular expression" in caplog.text
    await k.chat("alice", "!ping")
    assert k.room.said == ["pong"]
    await k.stop()


def test_rule_matching_and_go_spelling():
    from daz.plugins.eventfilter.rules import RuleConfig, build_rule, targets_for

    rc = RuleConfig.model_validate({"EventType": "chat*", "TargetPlugin": "x", "Priority": 3})
    assert (rc.event_type, rc.target_plugin, rc.priority) == ("chat*", "x", 3)
    chat = parse_event("chatMsg", {"username": "Alice", "msg": "Hi &amp; bye"}, room_id="r",
                       channel="Chan")
    r1 = build_rule("a", "cytube.event.chatMsg", "x", {"text": "& bye$", "channel": "chan"}, 1)
    r2 = build_rule("b", "*", "x", None, 0)
    r3 = build_rule("c", "chatMsg", "y", '{"username": "bob"}')
    assert r1.matches(chat) and r2.matches(chat) and not r3.matches(chat)
    assert [(t, r.source) for t, r in targets_for([r1, r2, r3], chat)] == [("x", "a")]
    assert build_rule("d", "chatMsg", "x", {"colour": "red"}) is None
    assert build_rule("e", "chatMsg", "bad name!", None) is None


def test_cooldowns_and_notice_limiter():
    from daz.commands.limits import Cooldowns, NoticeLimiter

    c = Cooldowns()
    c.start("Alice", "tell", 5, now=100)
    assert c.remaining("alice", "tell", 101) == 4 and c.remaining("alice", "ping", 101) == 0
    assert c.prune(106) == 1 and len(c) == 0
    n = NoticeLimiter(10)
    assert n.allow("Bob", 0) and not n.allow("bob", 9.9) and n.allow("BOB", 10)


def test_history_not_written_at_a_stop_comes_back_in_order_under_the_same_ids():
    import json
    import uuid

    from daz.plugins.eventfilter.history import HistoryWriter

    writer = HistoryWriter(None, batch=2)
    for i in range(5):
        writer.add(f"cmd{i}", "alice", "chan", [f"arg{i}"], success=i % 2 == 0, error="")
    first = writer.rows.popleft()
    taken_id = uuid.uuid4()
    writer.inflight = (taken_id, [first])  # taken by a flush whose outcome is unknown
    rows = [first, *writer.rows]
    saved = json.loads(json.dumps(writer.take_unsaved()))
    assert len(writer) == 0
    again = HistoryWriter(None, batch=2)
    again.restore(saved)
    assert again.saved[0] == (taken_id, [first])  # the same id: written once even if it was
    assert [row for _, chunk in again.saved for row in chunk] == rows
    assert len(again) == 5
