"""The fake CyTube server's pure parts: the throttle arithmetic as measured on the real server,
the connect bucket, text formatting, and which peer may set X-Forwarded-For."""
from __future__ import annotations

from daz.clock import FakeClock
from daz.sandbox.chat_format import cut_utf16, format_duration, to_html
from daz.sandbox.fake_channel import FakeChannel
from daz.sandbox.fake_cytube import _client_ip
from daz.sandbox.limits import ChatThrottle, TokenBucket


def run(throttle: ChatThrottle, clock: FakeClock, count: int, gap: float, **flood) -> int:
    passed = 0
    for _ in range(count):
        passed += not throttle.should_drop(**flood)
        clock.advance(gap)
    return passed


def test_sixty_at_twenty_per_second_pass_forty():
    clock = FakeClock()
    assert run(ChatThrottle(clock), clock, 60, 0.05, burst=20, sustained=10) == 40


def test_antiflood_params_burst_then_one_per_second():
    clock = FakeClock()
    throttle = ChatThrottle(clock)
    assert run(throttle, clock, 10, 0.0, burst=4, sustained=1, cooldown=4) == 4
    clock.advance(1.0)
    assert run(throttle, clock, 6, 1.0, burst=4, sustained=1, cooldown=4) == 6


def test_quiet_for_the_cooldown_resets_the_burst():
    clock = FakeClock()
    throttle = ChatThrottle(clock)
    assert run(throttle, clock, 25, 0.0, burst=20, sustained=10) == 20
    clock.advance(1.9)
    assert run(throttle, clock, 5, 0.0, burst=20, sustained=10) == 1     # not yet quiet enough
    clock.advance(2.01)
    assert run(throttle, clock, 25, 0.0, burst=20, sustained=10) == 20


def test_garbage_flood_params_fall_back_like_javascript():
    clock = FakeClock()
    assert run(ChatThrottle(clock), clock, 15, 0.0, burst="x", sustained=None) == 10


def test_token_bucket_five_then_one_per_ten_seconds_and_refusals_are_free():
    clock = FakeClock()
    bucket = TokenBucket(5, 0.1, clock)
    assert [bucket.try_take() for _ in range(7)] == [True] * 5 + [False] * 2
    clock.advance(9.9)
    assert not bucket.try_take()
    clock.advance(0.1)
    assert bucket.try_take() and not bucket.try_take()


def test_cut_keeps_utf16_units():
    assert cut_utf16("abc", 2) == "ab"
    assert cut_utf16("😀😀", 3) == "😀"       # the half pair is dropped
    assert cut_utf16("é" * 400, 320) == "é" * 320


def test_html_links_and_schemes():
    assert to_html("go to https://a.example/x_(y) now") == (
        'go to <a href="https://a.example/x_(y)" target="_blank" rel="noopener noreferrer">'
        "https://a.example/x_(y)</a> now")
    assert to_html("javascript://alert(1)") == (
        '<a target="_blank" rel="noopener noreferrer">javascript://alert(1)</a>')
    assert to_html('http://x.example/"><b>') == (
        '<a href="http://x.example/&quot;&gt;&lt;b&gt;" target="_blank" '
        'rel="noopener noreferrer">http://x.example/"&gt;&lt;b&gt;</a>')
    assert to_html("no links http://a.example", convert_links=False) == "no links http://a.example"


def test_durations():
    assert format_duration(12) == "00:12"
    assert format_duration(3725) == "01:02:05"
    assert format_duration(0, "tw") == "--:--"
    assert format_duration(0, "yt") == "00:00"


def test_forwarded_for_is_trusted_from_loopback_only():
    assert _client_ip("127.0.0.1", "10.1.2.3, 127.0.0.1") == "10.1.2.3"
    assert _client_ip("::1", "10.9.9.9") == "10.9.9.9"
    assert _client_ip("203.0.113.5", "10.1.2.3") == "203.0.113.5"
    assert _client_ip("127.0.0.1", "") == "127.0.0.1"


def test_playlist_insert_positions():
    channel = FakeChannel("c")
    a, after_a = channel.insert({"id": "a", "type": "tw"})
    b, after_b = channel.insert({"id": "b", "type": "tw"})
    channel.current_uid = a.uid
    c, after_c = channel.insert({"id": "c", "type": "tw"}, after="next")
    d, after_d = channel.insert({"id": "d", "type": "tw"}, after="prepend")
    assert (after_a, after_b, after_c, after_d) == ("prepend", a.uid, a.uid, "prepend")
    assert [e.uid for e in channel.playlist] == [d.uid, a.uid, c.uid, b.uid]
    assert channel.after_current() is c
    assert channel.move(d.uid, b.uid) and [e.uid for e in channel.playlist][-1] == d.uid
