"""ollama's pure logic: who is addressed, follow-up windows, prompt shape, reply cleaning."""
from datetime import UTC

import pytest

from daz.cytube.events import Media
from daz.plugins.ollama.mention import FollowUps, addresses_someone_else, mentions
from daz.plugins.ollama.prompt import (
    ChatHistory,
    build_chat,
    clean_reply,
    clean_text,
    persona_text,
    room_context,
)
from daz.plugins.ollama.store import CHANNEL_KEY, message_hash
from tests.fakes.room import RecordingRoom


@pytest.mark.parametrize("text", [
    "daz hi", "hi daz", "DAZ?", "Daz, what's up", "@daz you there", "is this daz's fault",
    "what do you think,daz", "(daz)", "daz: hello",
])
def test_whole_word_name_addresses_the_bot(text):
    assert mentions(text, ["daz"])


@pytest.mark.parametrize("text", [
    # Go's fuzzy match (edit distance 1, trailing letters dropped) fired on all of these.
    "that was dazzling", "I'm dazed", "daza", "dazz", "gaz", "raz", "daz_fan said hi",
    "daz-bot is someone else", "adaz", "", "   ",
])
def test_words_merely_containing_the_name_do_not(text):
    assert not mentions(text, ["daz"])


def test_go_false_positive_for_dave_does_not_happen():
    # Go: a bot named "Dave" was triggered by "have" (edit distance 1).
    assert not mentions("I have a question", ["Dave"])
    assert mentions("dave I have a question", ["Dave"])


def test_aliases_and_regex_characters_in_names():
    assert mentions("hey dazza", ["daz", "Dazza"])
    assert mentions("ping d.a.z please", ["d.a.z"])
    assert not mentions("ping dxaxz please", ["d.a.z"])
    assert not mentions("anything", [])
    assert not mentions("anything", ["", "  "])


def test_addresses_someone_else():
    present = {"bob", "alice", "daz"}
    assert addresses_someone_else("bob: what do you reckon", present, ["daz"])
    assert addresses_someone_else("that's right @alice", present, ["daz"])
    assert not addresses_someone_else("daz: what do you reckon", present, ["daz"])
    assert not addresses_someone_else("what do you reckon", present, ["daz"])
    assert not addresses_someone_else("carol: not here", present, ["daz"])


def test_follow_up_window_expires_and_counts_turns():
    f = FollowUps(seconds=60, max_turns=2)
    f.opened("r", "Alice", 100.0, by_name=True)
    assert f.active("r", "alice", 159.0)
    assert not f.active("r", "bob", 110.0)
    assert not f.active("other", "alice", 110.0)
    f.opened("r", "alice", 110.0, by_name=False)  # follow-up turn 1
    assert f.active("r", "alice", 169.0)  # window counts from the last reply
    f.opened("r", "alice", 120.0, by_name=False)  # turn 2: the limit
    assert not f.active("r", "alice", 121.0)
    f.opened("r", "alice", 200.0, by_name=True)
    assert f.active("r", "alice", 260.0)
    assert not f.active("r", "alice", 260.5)


def test_follow_ups_off():
    f = FollowUps(seconds=0, max_turns=3)
    f.opened("r", "alice", 1.0, by_name=True)
    assert not f.active("r", "alice", 1.0)


def test_clean_text_removes_controls_and_bounds_length():
    assert clean_text("a\x00b\nc\t d", 100) == "a b c d"
    out = clean_text("x" * 100_000, 50)
    assert len(out) == 50 and out.endswith("…")


def test_history_is_bounded_per_room_and_keeps_own_lines():
    h = ChatHistory(size=3)
    for i in range(5):
        h.add("r", "bob", f"line {i}")
    h.add("r", "daz", "my reply", own=True)
    h.add("other", "carol", "elsewhere")
    lines = h.recent("r")
    assert [x.text for x in lines] == ["line 3", "line 4", "my reply"]
    assert lines[-1].own
    assert h.add("r", "bob", " \x00 ") is None  # blank lines are not kept


def test_room_context_and_chat_messages():
    room = RecordingRoom(room_id="r", channel="mychan", bot_name="daz")
    from daz.cytube.values import User
    for name in ("daz", "Zed", "alice", "bob"):
        room.state.users[name.lower()] = User(name=name)
    room.state.current_media = Media(id="x1", title="Never Gonna Give You Up", type="yt")
    from datetime import datetime
    ctx = room_context(room, datetime(2026, 3, 1, 12, 30, tzinfo=UTC))
    assert ctx.users == ["alice", "bob", "Zed"]  # the bot itself is not listed
    text = ctx.describe()
    assert "mychan" in text and "Never Gonna Give You Up [yt]" in text
    assert "alice, bob, Zed" in text and "2026-03-01 12:30" in text
    h = ChatHistory(size=10)
    h.add("r", "bob", "hello all")
    h.add("r", "daz", "hey bob", own=True)
    messages = build_chat(persona_text("I am {bot_name} {not a field}", "daz"), ctx,
                          h.recent("r"), "alice", "daz how are you")
    assert messages[0]["role"] == "system"
    assert messages[0]["content"].startswith("I am daz {not a field}")
    assert messages[1] == {"role": "user", "content": "bob: hello all"}
    assert messages[2] == {"role": "assistant", "content": "hey bob"}
    assert messages[3] == {"role": "user", "content": "alice: daz how are you"}


def test_nothing_playing_and_nobody_else():
    room = RecordingRoom(room_id="r", channel="c", bot_name="daz")
    from datetime import datetime
    text = room_context(room, datetime.now(UTC)).describe()
    assert "Now playing: nothing" in text and "nobody else" in text


@pytest.mark.parametrize("raw,expected", [
    ("  hello\nthere  ", "hello there"),
    ("daz: sure thing", "sure thing"),
    ("DAZ : sure thing", "sure thing"),
    ('"quoted whole"', "quoted whole"),
    ('"a" is a letter', '"a" is a letter'),
    ("<think>private reasoning</think>the answer", "the answer"),
    ("<think>never closed", ""),
    ("   ", ""),
    ("/kick bob", "/kick bob"),  # kept: room.say(user_input=True) neutralises it
])
def test_clean_reply(raw, expected):
    assert clean_reply(raw, "daz", 300) == expected


def test_clean_reply_cuts_at_a_word_boundary_and_never_splits_characters():
    words = clean_reply("word " * 200, "daz", 50)
    assert len(words) <= 50 and words.endswith("…") and "wor…" not in words
    wide = clean_reply("é" * 1000 + "😀" * 1000, "daz", 300)
    assert len(wide) <= 300
    wide.encode("utf-8")  # no half characters (Go sliced bytes at 500)


def test_message_hash_is_the_go_key():
    import hashlib
    assert message_hash("c", "u", "hi", 5) == hashlib.sha256(b"c:u:hi:5").hexdigest()
    assert message_hash("c", "u", "\udcff", 5)  # lone surrogates from hostile input still hash


def test_the_channel_limit_key_is_no_cytube_name():
    assert CHANNEL_KEY.startswith("*")
