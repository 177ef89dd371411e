"""The fake CyTube server behaves as a live CyTube server was seen to:
join burst, logins, chat, PMs, duplicate logins. Limits and faults: test_fake_cytube_limits.py."""
from __future__ import annotations

import aiohttp
import pytest

from tests.fakes.cytube import LoginRefused, SimulatedUser

MOD_META_KEYS = {"afk", "muted", "smuted", "aliases", "ip"}




async def anonymous(server, channel="testchan") -> SimulatedUser:
    user = SimulatedUser(server, "anon", channel=channel, ip=server.next_ip())
    await user.connect()
    await user.join()
    return user


async def sync(sender: SimulatedUser, *receivers: SimulatedUser, token: str = "sync") -> None:
    """Everything sent to ``receivers`` before this line has arrived once it has."""
    await sender.chat(token)
    for receiver in (sender, *receivers):
        await receiver.wait_for("chatMsg", lambda p: p["msg"] == token, timeout=3)


def names(events) -> list[str]:
    return [name for name, _ in events]


async def test_socketconfig_points_at_the_server(server):
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{server.base_url}/socketconfig/testchan.json") as response:
            assert await response.json() == {"servers": [{"url": server.base_url,
                                                          "secure": False}]}


async def test_join_burst_in_captured_order_with_history_replayed(server):
    old = [{"username": "carol", "msg": f"old {i}", "meta": {}, "time": 1_700_000_000_000 + i}
           for i in range(20)]
    server.channel("testchan").history.extend(old)
    uid = await server.queue_media("testchan", {"id": "abc", "title": "A", "seconds": 30,
                                                "type": "cu"})
    await server.play("testchan", uid, current_time=4.0)
    user = await anonymous(server)
    await user.wait_for("usercount", timeout=3)
    assert names(user.events) == (
        ["rank", "setPermissions", "setPlaylistLocked", "emoteList"] + ["chatMsg"] * 15
        + ["drinkCount", "channelCSSJS", "setMotd", "channelOpts", "setPlaylistMeta",
           "playlist", "setCurrent", "setCurrent", "changeMedia", "userlist", "usercount"])
    assert user.received("rank") == [-1]
    assert user.received("chatMsg") == old[-15:]          # original times kept
    assert user.received("setPermissions")[0]["playlistadd"] == 1.5
    assert user.received("setPlaylistLocked") == [True]
    assert user.received("setCurrent") == [uid, uid]
    change = user.received("changeMedia")[0]
    assert change["currentTime"] == 4.0 and change["paused"] is False
    assert change["id"].startswith("cu:") and change["duration"] == "00:30"
    assert user.received("usercount") == [1]


async def test_unregistered_channel_ends_its_burst_with_channel_not_registered(server):
    server.channels["open"] = type(server.channel("testchan"))("open", registered=False)
    user = await anonymous(server, channel="open")
    await user.wait_for("channelNotRegistered", timeout=3)
    assert user.received("setPlaylistLocked") == [False]
    assert user.received("setPermissions")[0]["playlistadd"] == -1
    assert names(user.events)[-1] == "channelNotRegistered"


async def test_registered_login_sends_rank_login_adduser_then_channel_rank(server):
    alice = await server.user("alice")
    after_join = names(alice.events).index("usercount") + 1
    sequence = alice.events[after_join:]
    await alice.wait_for("setUserRank")
    sequence = alice.events[after_join:]
    assert names(sequence)[:8] == ["rank", "login", "addUser", "rank", "userlist",
                                   "setPlaylistMeta", "playlist", "setUserRank"]
    assert sequence[0][1] == 1
    assert sequence[1][1] == {"success": True, "name": "alice"}      # no "guest" key
    assert sequence[2][1]["rank"] == 1
    assert sequence[3][1] == 5
    assert set(sequence[4][1][0]["meta"]) == MOD_META_KEYS           # re-sent: now a mod
    assert sequence[7][1] == {"name": "alice", "rank": 5}
    whisper = await alice.wait_for("chatMsg", lambda p: p["username"] == "[server]")
    assert whisper["msg"] == "alice joined (aliases: alice)"
    assert whisper["meta"] == {"addClass": "server-whisper", "addClassToNameAndTimestamp": True}


async def test_guest_login_and_what_others_see(server):
    alice = await server.user("alice")
    bob = await server.user("bob")
    guest = await server.user("guesty")
    assert guest.received("login") == [{"success": True, "name": "guesty", "guest": True}]
    assert guest.received("rank")[-1] == 0
    added = await bob.wait_for("addUser", lambda p: p["name"] == "guesty")
    assert added == {"name": "guesty", "rank": 0, "profile": {"image": "", "text": ""},
                     "meta": {"afk": False, "muted": False}}
    mod_view = await alice.wait_for("addUser", lambda p: p["name"] == "guesty")
    assert set(mod_view["meta"]) == MOD_META_KEYS
    await alice.wait_for("chatMsg", lambda p: p["msg"] == "guesty joined (aliases: guesty)")
    await sync(alice, bob)
    assert not [c for c in bob.chats() if c[0] == "[server]"]   # rank 1 gets no whispers
    assert ("bob", 1) in [(u["name"], u["rank"]) for u in guest.received("userlist")[0]]


@pytest.mark.parametrize("name, password, error", [
    ("alice", "wrong", "Invalid username/password combination"),
    ("nobody", "whatever", "Invalid username/password combination"),
    ("alice", None, "That username is registered."),
    ("bad name!", None, "Invalid username.  Usernames must be 1-20 characters long and consist "
                        "only of characters a-z, A-Z, 0-9, -, or _."),
    ("x" * 21, None, "Invalid username.  Usernames must be 1-20 characters long and consist "
                     "only of characters a-z, A-Z, 0-9, -, or _."),
])
async def test_login_failures_carry_the_real_error_strings(server, name, password, error):
    with pytest.raises(LoginRefused) as refused:
        await server.user(name, password=password, guest=password is None)
    assert refused.value.error == error


async def test_guest_logins_are_one_per_ip_per_delay(server):
    await server.user("first", ip="127.0.0.50")
    with pytest.raises(LoginRefused) as refused:
        await server.user("second", ip="127.0.0.50")
    assert refused.value.error == ("Guest logins are restricted to one per IP address per 60 "
                                   "seconds.")
    server.clock.advance(61)
    await server.user("third", ip="127.0.0.50")


async def test_guest_name_in_use_is_refused(server):
    await server.user("twin")
    with pytest.raises(LoginRefused) as refused:
        await server.user("TWIN")
    assert refused.value.error == "That name is already in use on this channel."


async def test_chat_is_echoed_to_all_escaped_linked_and_cut_before_escaping(server):
    alice = await server.user("alice")
    bob = await server.user("bob")
    watcher = await anonymous(server)       # not logged in, still sees the channel's chat
    await bob.chat("hi <script>x</script> & 'quotes' \"too\" http://example.com/x?a=1&b=2")
    line = await alice.wait_for("chatMsg", lambda p: p["username"] == "bob")
    assert line["msg"] == ("hi &lt;script&gt;x&lt;/script&gt; &amp; 'quotes' \"too\" "
                           '<a href="http://example.com/x?a=1&amp;b=2" target="_blank" '
                           'rel="noopener noreferrer">http://example.com/x?a=1&amp;b=2</a>')
    assert line["meta"] == {} and isinstance(line["time"], int)
    assert await bob.wait_for("chatMsg", lambda p: p["username"] == "bob") == line
    assert await watcher.wait_for("chatMsg", lambda p: p["username"] == "bob") == line
    await bob.chat("<" * 1200)
    long = await alice.wait_for("chatMsg", lambda p: p["msg"].startswith("&lt;"))
    assert long["msg"] == "&lt;" * 320
    assert server.chat_from("testchan", "bob")[-1] == "<" * 320


async def test_cut_counts_utf16_units_like_javascript(server):
    bob = await server.user("bob")
    await bob.chat("a" + "😀" * 200)       # each emoji is two UTF-16 units
    line = await bob.wait_for("chatMsg", lambda p: p["username"] == "bob")
    assert line["msg"] == "a" + "😀" * 159


async def test_greentext_me_and_unknown_slash_commands(server):
    bob = await server.user("bob")
    await bob.chat("> green")
    await bob.chat("/me waves")
    await bob.chat("/notacommand hello")
    lines = [await bob.wait_for("chatMsg", lambda p: p["username"] == "bob") for _ in range(3)]
    assert lines[0]["msg"] == "&gt; green" and lines[0]["meta"] == {"addClass": "greentext"}
    assert lines[1]["msg"] == "waves"
    assert lines[1]["meta"] == {"addClass": "action", "action": True}
    assert lines[2]["msg"] == "/notacommand hello"
    assert server.chat_from("testchan", "bob") == ["> green", "waves", "/notacommand hello"]


async def test_anonymous_chat_and_blank_chat_are_ignored(server):
    alice = await server.user("alice")
    watcher = await anonymous(server)
    await watcher.chat("I am nobody")
    await alice.chat("   ")
    await sync(alice, watcher)
    assert [c[1] for c in alice.chats() if c[0] != "[server]"] == ["sync"]


async def test_afk_toggles_with_meta_first_and_chat_clears_it(server):
    alice = await server.user("alice")
    bob = await server.user("bob")
    mark = alice.mark()
    await bob.afk()
    assert await alice.wait_for("setAFK", since=mark) == {"name": "bob", "afk": True}
    seen = names(alice.events[mark:])
    assert seen.index("setUserMeta") < seen.index("setAFK")
    meta = alice.received("setUserMeta")[-1]
    assert meta["name"] == "bob" and meta["meta"]["afk"] is True and "ip" in meta["meta"]
    await bob.wait_for("clearVoteskipVote")
    assert not [c for c in bob.chats() if "/afk" in c[1]]
    await bob.chat("back")
    assert await alice.wait_for("setAFK", since=mark) == {"name": "bob", "afk": False}


async def test_pm_goes_to_both_sides_and_errors_are_the_real_strings(server):
    alice = await server.user("alice")
    bob = await server.user("bob")
    await bob.pm("ALICE", "psst alice")
    received = await alice.wait_for("pm")
    assert received["username"] == "bob" and received["to"] == "alice"
    assert received["msg"] == "psst alice" and received["meta"] == {}
    assert await bob.wait_for("pm") == received
    assert server.pms_to("alice") == [("bob", "psst alice")]
    await bob.pm("nobody", "hello?")
    await bob.pm("bob", "me?")
    await bob.pm("not a name", "x")
    errors = [await bob.wait_for("errorMsg") for _ in range(3)]
    assert errors == [{"msg": "PM failed: nobody isn't connected to this channel."},
                      {"msg": "You can't PM yourself!"},
                      {"msg": "PM failed: not a name isn't a valid username."}]
    anon = await anonymous(server)
    await anon.pm("alice", "hi")
    assert await anon.wait_for("errorMsg") == {"msg": "You must be signed in to send PMs"}


async def test_pm_is_cut_and_escaped(server):
    alice = await server.user("alice")
    bob = await server.user("bob")
    await bob.pm("alice", ">" + "&" * 400)
    received = await alice.wait_for("pm")
    assert received["msg"] == "&gt;" + "&amp;" * 319
    assert received["meta"] == {"addClass": "greentext"}


async def test_duplicate_login_kicks_the_old_socket(server):
    alice = await server.user("alice")
    first = await server.user("bob")
    mark = alice.mark()
    second = await server.user("bob")
    assert await first.wait_for("kick") == {"reason": "Duplicate login"}
    await first.wait_for("disconnect")
    await alice.wait_for("addUser", lambda p: p["name"] == "bob", since=mark)
    seen = [(n, p.get("name")) for n, p in alice.events[mark:] if n in ("userLeave", "addUser")]
    assert seen == [("userLeave", "bob"), ("addUser", "bob")]
    assert [m.name for m in server.channel("testchan").users] == ["alice", "bob"]
    await second.chat("still here")
    await alice.wait_for("chatMsg", lambda p: p["msg"] == "still here")


async def test_leave_sends_user_leave(server):
    alice = await server.user("alice")
    bob = await server.user("bob")
    await bob.leave()
    assert await alice.wait_for("userLeave") == {"name": "bob"}
    assert [m.name for m in server.channel("testchan").users] == ["alice"]


async def test_set_rank_and_kick_from_the_server(server):
    alice = await server.user("alice")
    bob = await server.user("bob")
    mark = alice.mark()
    await server.set_rank("testchan", "bob", 2)
    assert await alice.wait_for("setUserRank", since=mark) == {"name": "bob", "rank": 2}
    assert await bob.wait_for("rank", lambda r: r == 2) == 2
    fresh = await bob.wait_for("userlist", lambda users: "ip" in users[0]["meta"])
    assert {u["name"] for u in fresh} == {"alice", "bob"}
    assert server.channel("testchan").ranks["bob"] == 2
    await server.kick("testchan", "bob", "bye")
    assert await bob.wait_for("kick") == {"reason": "bye"}
    assert await alice.wait_for("userLeave") == {"name": "bob"}


async def test_client_set_channel_rank_checks_ranks(server):
    alice = await server.user("alice")
    guest = await server.user("guesty")
    await alice.emit("setChannelRank", {"name": "guesty", "rank": 2})
    assert await guest.wait_for("setUserRank", lambda p: p["name"] == "guesty") == {
        "name": "guesty", "rank": 2}
    fail = await alice.wait_for("channelRankFail")
    assert fail["msg"].startswith("The user you promoted is not a registered account.")
    await alice.emit("setChannelRank", {"name": "guesty", "rank": 5})
    assert "rank" in (await alice.wait_for("channelRankFail"))["msg"]
