"""The Kryten wire format (bridge.wire) and the state mirror (bridge.mirror)."""
from __future__ import annotations

import json
import uuid
from types import SimpleNamespace

import pytest

from daz.bridge import wire
from daz.bridge.actions import CommandError, as_int
from daz.bridge.mirror import CURRENT, ITEMS, USERS, RoomMirror


def test_subject_tokens_follow_the_old_bridges_rule():
    assert wire.event_subject("420Grindhouse", "chatMsg") == \
        "kryten.events.cytube.420grindhouse.chatmsg"
    assert wire.subject_token("My Channel!") == "my-channel"
    assert wire.subject_token("a.b*c>d") == "abcd"
    with pytest.raises(wire.BadToken):
        wire.subject_token("?!.")


def test_the_envelope_keeps_casing_payload_and_names_as_configured():
    body = json.loads(wire.envelope("changeMedia", [1, "x", None], "MyChan", "cytu.be"))
    assert set(body) == {"event_name", "payload", "channel", "domain", "timestamp",
                         "correlation_id"}
    assert body["event_name"] == "changeMedia" and body["payload"] == [1, "x", None]
    assert (body["channel"], body["domain"]) == ("MyChan", "cytu.be")
    assert uuid.UUID(body["correlation_id"]).version == 4
    marked = json.loads(wire.envelope("chatMsg", {"msg": "é"}, "c", "d", ("own",)))
    assert marked["daz_flags"] == ["own"] and marked["payload"] == {"msg": "é"}


def test_envelope_timestamps_and_correlation_ids_are_what_kryten_reads():
    from datetime import UTC, datetime, timedelta

    before = datetime.now(UTC)
    bodies = [json.loads(wire.envelope("chatMsg", {}, "c", "d")) for _ in range(2000)]
    after = datetime.now(UTC)
    stamps = [datetime.fromisoformat(b["timestamp"]) for b in bodies]
    assert all(b["timestamp"].endswith("+00:00") and len(b["timestamp"]) == 32
               for b in bodies)  # ISO 8601 with microseconds, as datetime.isoformat writes
    assert before - timedelta(microseconds=1) <= stamps[0] and stamps[-1] <= after
    assert stamps == sorted(stamps)
    ids = [uuid.UUID(b["correlation_id"]) for b in bodies]
    assert len(set(ids)) == len(ids)  # one of its own for each event
    assert all(i.version == 4 and i.variant == uuid.RFC_4122 for i in ids)


def test_replayed_history_and_system_pms_are_left_out():
    chat = SimpleNamespace(event_name="chatMsg", payload={}, replayed=True)
    assert wire.leave_out(chat)
    chat.replayed = False
    assert not wire.leave_out(chat)
    assert wire.leave_out(SimpleNamespace(event_name="pm", payload={"msg": "system:about"}))
    assert not wire.leave_out(SimpleNamespace(event_name="pm", payload={"msg": "hi"}))


def test_uids_as_numbers_or_digit_strings():
    assert as_int(42) == as_int("42") == as_int(" 42 ") == 42
    for bad in ("x7", True, None):
        with pytest.raises(CommandError):
            as_int(bad)


def test_the_mirror_follows_the_playlist_and_users_like_the_server():
    mirror = RoomMirror()
    item = lambda uid, mid: {"media": {"id": mid, "type": "yt"}, "uid": uid}  # noqa: E731
    assert mirror.apply("playlist", [item(1, "a"), item(2, "b")]) == (ITEMS,)
    mirror.apply("queue", {"item": item(3, "c"), "after": 1})
    mirror.apply("moveVideo", {"from": 1, "after": 3})
    mirror.apply("delete", {"uid": 2})
    assert [i["uid"] for i in mirror.playlist] == [3, 1]
    mirror.apply("setCurrent", 3)
    assert mirror.apply("changeMedia", {"id": "c", "title": "C"}) == (CURRENT,)
    assert mirror.current["uid"] == 3
    mirror.apply("userlist", [{"name": "alice", "rank": 1, "meta": {"afk": False}}])
    assert mirror.apply("setAFK", {"name": "ALICE", "afk": True}) == (USERS,)
    assert mirror.user("alice")["meta"]["afk"] is True
    mirror.apply("setUserRank", {"name": "alice", "rank": 3})
    assert mirror.user("alice") == {"name": "alice", "rank": 3, "meta": {"afk": True}}
    assert mirror.apply("userLeave", {"name": "alice"}) == (USERS,) and mirror.users == []
    assert mirror.apply("setMotd", "<b>hi</b>") and mirror.value(("state", "motd")) == "<b>hi</b>"
    assert mirror.apply("nonsense", {"x": 1}) == ()
    assert mirror.apply("queue", "not a dict") == ()  # bad payloads change nothing
