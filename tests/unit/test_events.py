"""Event models: the captured payloads parse exactly; anything else never raises or drops."""
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from daz.cytube import events as ev
from daz.cytube.state import RoomState

R = dict(room_id="r", channel="testchan")


def test_captured_chat_message_is_unescaped_for_commands_and_kept_raw_for_logging():
    payload = {"username": "guesty",
               "msg": "&gt; greentext from guest &lt;script&gt;x&lt;/script&gt;",
               "meta": {"addClass": "greentext"}, "time": 1795562561947}
    e = ev.parse_event("chatMsg", payload, **R)
    assert isinstance(e, ev.ChatMessage)
    assert e.text == "> greentext from guest <script>x</script>"
    assert e.msg == payload["msg"] and e.payload is payload
    assert e.time == 1795562561947 and e.topic == "cytube.event.chatMsg"
    assert not e.ignored and e.malformed is None


def test_links_become_their_text_and_parentheses_are_unescaped():
    e = ev.parse_event("chatMsg", {"username": "bob", "msg": 'see <a href="http://example.com/x" '
                                   'target="_blank" rel="noopener noreferrer">http://example.com/x'
                                   '</a> &#40;ok&#41;', "meta": {}, "time": 1}, **R)
    assert e.text == "see http://example.com/x (ok)"


def test_server_whisper_and_shadow_lines_are_marked_ignored():
    whisper = ev.parse_event("chatMsg", {"username": "[server]", "msg": "bob joined (aliases: bob)",
                                         "meta": {"addClass": "server-whisper",
                                                  "addClassToNameAndTimestamp": True},
                                         "time": 5}, **R)
    shadow = ev.parse_event("chatMsg", {"username": "x", "msg": "hi", "meta": {"shadow": True},
                                        "time": 5}, **R)
    assert whisper.whisper and whisper.ignored
    assert shadow.shadow and shadow.ignored


def test_fractional_rank_and_mod_meta_keep_the_whole_userlist():
    payload = [{"name": "alice", "rank": 5, "profile": {"image": "", "text": ""},
                "meta": {"afk": False, "muted": False, "smuted": False, "aliases": ["alice"],
                         "ip": "yFA.j8g.iXh.Mtt"}},
               {"name": "leader", "rank": 1.5, "meta": {"afk": True, "muted": False}}]
    e = ev.parse_event("userlist", payload, **R)
    assert [(u.name, u.rank, u.afk) for u in e.users] == [("alice", 5, False),
                                                          ("leader", 1.5, True)]


def test_live_media_with_dashes_duration_is_kept():
    payload = {"id": "rtmp://example.com/live/key", "title": "Livestream", "seconds": 0,
               "duration": "--:--", "type": "rt", "meta": {}, "currentTime": 0, "paused": False}
    e = ev.parse_event("changeMedia", payload, **R)
    assert e.media.is_live and e.media.duration == "--:--" and e.malformed is None


def test_queue_delete_move_and_set_current_use_uids():
    q = ev.parse_event("queue", {"item": {"media": {"id": "cu:abc", "title": "My custom embed",
                                                    "seconds": 12, "duration": "00:12",
                                                    "type": "cu", "meta": {}},
                                          "uid": 14, "temp": True, "queueby": "alice"},
                                 "after": "prepend"}, **R)
    assert q.item.uid == 14 and q.after == "prepend" and q.item.media.seconds == 12
    assert ev.parse_event("delete", {"uid": 17}, **R).uid == 17
    m = ev.parse_event("moveVideo", {"from": 3, "after": 9}, **R)
    assert (m.uid, m.after) == (3, 9)
    assert ev.parse_event("setCurrent", 14, **R).uid == 14


def test_login_failure_text_is_read_from_error():
    e = ev.parse_event("login", {"success": False,
                                 "error": "Invalid username/password combination"}, **R)
    assert not e.success and e.error == "Invalid username/password combination"


def test_channel_opts_with_password_string_is_not_dropped():
    e = ev.parse_event("channelOpts", {"password": "hunter2", "chat_antiflood": True,
                                       "chat_antiflood_params": {"burst": 4, "sustained": 1,
                                                                 "cooldown": 4}}, **R)
    assert e.options["password"] == "hunter2" and e.antiflood


def test_room_state_follows_playlist_edits_by_uid():
    s = RoomState("c")
    def item(uid: int) -> dict:
        return {"media": {"id": f"m{uid}", "title": "t", "seconds": 10, "type": "cu"},
                "uid": uid, "temp": False, "queueby": "a"}
    s.apply(ev.parse_event("playlist", [item(1), item(2), item(3)], **R))
    s.apply(ev.parse_event("queue", {"item": item(4), "after": 1}, **R))
    s.apply(ev.parse_event("moveVideo", {"from": 3, "after": "prepend"}, **R))
    s.apply(ev.parse_event("delete", {"uid": 2}, **R))
    assert s.order == [3, 1, 4]
    s.apply(ev.parse_event("userlist", [{"name": "Bob", "rank": 1}], **R))
    s.apply(ev.parse_event("setUserRank", {"name": "bob", "rank": 1.5}, **R))
    assert s.rank_of("BOB") == 1.5 and s.rank_of("nobody") == -1


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=50),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10),
                                                                       children, max_size=5),
    max_leaves=30)


@settings(max_examples=400, deadline=None)
@given(name=st.sampled_from(sorted(ev.EVENT_TYPES)) | st.text(max_size=20) | st.integers(),
       payload=json_values)
def test_any_payload_for_any_event_parses_without_raising_and_updates_state(name, payload):
    e = ev.parse_event(name, payload, **R)
    assert isinstance(e, ev.CytubeEvent)
    assert e.topic.startswith("cytube.event.")
    RoomState("c").apply(e)  # state updates never raise either


@settings(max_examples=200, deadline=None)
@given(payload=st.dictionaries(st.sampled_from(["username", "msg", "meta", "time", "to"]),
                               json_values))
def test_malformed_chat_keeps_the_event_and_says_why(payload):
    e = ev.parse_event("chatMsg", payload, **R)
    assert isinstance(e, ev.ChatMessage)
    if e.malformed:
        assert isinstance(e.malformed, str)
    json.dumps(e.payload, default=str)  # the raw payload is still loggable
