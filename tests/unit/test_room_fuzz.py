"""Property tests: whatever frames a server sends, the Room's frame intake never raises, every
frame is published as an event, and RoomState stays self-consistent."""
from __future__ import annotations

import math

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from daz.bus import Bus
from daz.config import RoomConfig
from daz.cytube import events as ev
from daz.cytube.room import Room

NAMES = sorted(ev.EVENT_TYPES) + ["emoteList", "drinkCount", "voteskip", "channelNotRegistered",
                                  "", "__proto__", "a" * 100, "x y"]

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=10**300, max_value=10**5000),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=50),
    st.just("x" * 100_000), st.just("\x00" * 10), st.just("--:--"), st.just("prepend"),
    st.just("-5"), st.just("²"),
)
json_like = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=10), inner, max_size=5)),
    max_leaves=30)


def deep(levels: int):
    value: object = "bottom"
    for i in range(levels):
        value = [value] if i % 2 else {"meta": value}
    return value


uids = st.integers(min_value=-2, max_value=6)
names = st.sampled_from(["alice", "Alice", "bob", "dazbot", "DAZBOT", "", "[server]"])
ranks = st.one_of(st.sampled_from([-1, 0, 1, 1.5, 2, 5, 255]), scalars)
media = st.fixed_dictionaries({"id": st.text(max_size=5), "title": scalars,
                               "seconds": st.one_of(st.integers(-5, 100), scalars),
                               "duration": st.sampled_from(["00:12", "--:--", 5]),
                               "type": st.sampled_from(["cu", "tw", None])})
item = st.fixed_dictionaries({"media": st.one_of(media, scalars), "uid": st.one_of(uids, scalars),
                              "temp": scalars, "queueby": names})
after = st.one_of(uids, st.sampled_from(["prepend", "append", "3", "junk"]), scalars)
user = st.fixed_dictionaries({"name": names, "rank": ranks,
                              "meta": st.one_of(st.fixed_dictionaries(
                                  {"afk": scalars, "muted": scalars}), scalars)})

shaped = st.one_of(
    st.tuples(st.just("playlist"), st.lists(item, max_size=6)),
    st.tuples(st.just("queue"), st.fixed_dictionaries({"item": item, "after": after})),
    st.tuples(st.just("moveVideo"), st.fixed_dictionaries({"from": uids, "after": after})),
    st.tuples(st.just("delete"), st.one_of(uids, st.fixed_dictionaries({"uid": uids}))),
    st.tuples(st.just("setCurrent"), st.one_of(uids, scalars)),
    st.tuples(st.just("userlist"), st.one_of(st.lists(user, max_size=4), scalars)),
    st.tuples(st.just("addUser"), user),
    st.tuples(st.just("userLeave"), st.fixed_dictionaries({"name": names})),
    st.tuples(st.just("setUserRank"), st.fixed_dictionaries({"name": names, "rank": ranks})),
    st.tuples(st.just("login"), st.fixed_dictionaries({"success": st.one_of(st.just(True), scalars),
                                                       "name": names, "error": scalars})),
    st.tuples(st.just("rank"), ranks),
    st.tuples(st.just("channelOpts"), st.fixed_dictionaries(
        {"chat_antiflood": scalars, "chat_antiflood_params": json_like})),
    st.tuples(st.just("chatMsg"), st.fixed_dictionaries(
        {"username": names, "msg": scalars, "meta": json_like, "time": scalars})),
    st.tuples(st.just("pm"), st.fixed_dictionaries(
        {"username": names, "to": names, "msg": scalars, "time": scalars})),
    st.tuples(st.just("cooldown"), scalars),
    st.tuples(st.just("kick"), st.one_of(st.fixed_dictionaries({"reason": scalars}), scalars)),
    st.tuples(st.just("errorMsg"), json_like),
)
anything = st.tuples(st.one_of(st.sampled_from(NAMES), scalars), json_like)
frames = st.lists(st.one_of(shaped, anything, st.tuples(st.sampled_from(NAMES),
                                                       st.builds(deep, st.integers(1, 3000)))),
                  max_size=40)


def new_room() -> Room:
    config = RoomConfig(channel="testchan", username="dazbot", password="pw", enabled=True,
                        server_url="http://127.0.0.1:1")
    return Room(config, Bus())


def check_consistent(room: Room) -> None:
    state = room.state
    assert len(state.order) == len(set(state.order))
    assert set(state.order) == set(state.playlist)
    assert all(isinstance(uid, int) for uid in state.order)
    assert all(key == u.name.lower() for key, u in state.users.items())
    assert isinstance(state.bot_rank, (int, float))
    flood = state.antiflood
    if flood is not None:
        burst, rate = flood
        assert 1 <= burst <= 20 and 0.1 <= rate <= 10 and math.isfinite(rate)
    assert state.current_uid is None or isinstance(state.current_uid, int)
    assert room.outbox.delay(0.0) is None or room.outbox.delay(0.0) >= 0
    if state.joined:
        assert state.logged_in


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.data_too_large])
@given(frames)
def test_any_frames_never_raise_and_keep_state_consistent(batch):
    room = new_room()
    for name, payload in batch:
        room.intake.on_frame(name, payload)  # must not raise
        check_consistent(room)
    published = [e for e in room.intake.inbox if isinstance(e, ev.CytubeEvent)]
    assert len(published) == len(batch) == room.intake.seq
    assert [e.seq for e in published] == list(range(1, len(batch) + 1))


@settings(max_examples=100, deadline=None)
@given(st.lists(shaped, min_size=1, max_size=60))
def test_joined_only_after_login_and_userlist(batch):
    room = new_room()
    saw_login = saw_userlist = False
    joins = 0
    for name, payload in batch:
        room.intake.on_frame(name, payload)
        frame = next(e for e in reversed(room.intake.inbox) if isinstance(e, ev.CytubeEvent))
        if isinstance(frame, ev.LoginResult) and frame.success:
            saw_login = True
        if name == "userlist":
            saw_userlist = True
        if room.state.joined:
            assert saw_login and saw_userlist
            joins += 1
    chats = [e for e in room.intake.inbox if isinstance(e, ev.ChatMessage)]
    if not room.state.joined:
        assert all(c.replayed for c in chats)
    event("joined" if joins else "never joined")
