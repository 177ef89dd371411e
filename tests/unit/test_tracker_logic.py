"""Pure logic of usertracker, mediatracker and analytics: wording, play time, counters."""
from datetime import UTC, datetime, timedelta

from daz.humanize import ago, clean_username, stamp
from daz.plugins.analytics.counters import Batch, day_of, hour_of
from daz.plugins.mediatracker.plays import Play, link, media_url

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def test_ago_wording():
    assert ago(NOW, NOW) == "just now"
    assert ago(NOW - timedelta(seconds=42), NOW) == "just now"
    assert ago(NOW - timedelta(minutes=1, seconds=5), NOW) == "1 minute ago"
    assert ago(NOW - timedelta(hours=3, minutes=59), NOW) == "3 hours ago"
    assert ago(NOW - timedelta(days=2), NOW) == "2 days ago"
    assert ago((NOW - timedelta(hours=1)).replace(tzinfo=None), NOW) == "1 hour ago"  # naive=UTC
    assert ago(NOW + timedelta(seconds=3), NOW) == "just now"  # a writer's clock slightly ahead
    assert stamp(NOW) == "2026-11-25 12:00 UTC"


def test_usernames_are_checked_and_at_signs_dropped():
    assert clean_username("@Alice") == "Alice"
    assert clean_username("bob:") == "bob"
    assert clean_username("x" * 21) is None
    assert clean_username("'; DROP TABLE x; --") is None
    assert clean_username("") is None


def _play(duration=12, **kw):
    return Play(channel="c", media_id="m", media_type="cu", title="t", duration=duration,
                uid=kw.pop("uid", 14), started_at=1000.0, at=1000.0, **kw)


def test_a_play_watched_to_the_end_is_completed():
    p = _play(paused=True)  # changeMedia at the 3 s lead-in: currentTime -3, paused
    p.observe(-3, True, 1000.0)
    p.observe(0, False, 1003.0)  # lead-in over: not played time
    p.observe(5, False, 1008.0)
    p.observe(10.001, False, 1013.0)
    p.close(1017.0)  # the next changeMedia, 2 s after the end
    assert abs(p.played - 12.0) < 0.01
    assert p.completed


def test_skipped_paused_and_seeked_time_is_not_played():
    p = _play(duration=600, paused=False)
    p.observe(0, False, 1000.0)
    p.observe(30, False, 1030.0)
    p.observe(30, True, 1040.0)  # paused at 30 (10 s of wall time, no progress)
    p.observe(30, False, 1100.0)  # a minute paused
    p.observe(400, False, 1105.0)  # seeked forward: 5 s of wall time, not 370 s
    p.close(1110.0)  # skipped 5 s later
    assert abs(p.played - 40.0) < 0.01
    assert not p.completed


def test_repeats_on_join_continue_a_play_and_a_loop_starts_a_new_one():
    p = _play(duration=120, paused=False)
    p.observe(50, False, 1050.0)
    assert p.continues("cu", "m", 14, 52.0)  # the repeat after a reconnect
    assert p.continues("cu", "m", None, 50.0)  # uid not known yet
    assert not p.continues("cu", "m", 15, 52.0)  # the same media queued twice: another item
    assert not p.continues("yt", "m", 14, 52.0)
    p.close(1125.0)
    assert p.completed and p.position >= 119
    assert not p.continues("cu", "m", 14, -3)  # played again from the lead-in


def test_after_a_gap_a_renumbered_item_a_few_seconds_back_is_the_same_play():
    p = _play(duration=600, paused=False)
    p.observe(340, False, 1340.0)
    p.close(1346.0)  # the server restarted: our socket dropped at 346 s
    # Reloaded: uid 14 came back as uid 0, the item at 338 s (as a live server did).
    assert p.continues("cu", "m", 0, 338.0)
    assert p.continues("cu", "m", 0, 320.0)
    assert not p.continues("cu", "m", 0, 300.0)  # further back than a restart puts it
    assert not p.continues("cu", "m", 0, -3)  # played again from its start
    assert not p.continues("cu", "other", 0, 338.0)
    early = _play(duration=600, paused=False)
    early.observe(4, False, 1004.0)
    early.close(1005.0)
    assert early.continues("cu", "m", 3, 0)  # restarted 5 s in: back at 0, still this play


def test_live_media_is_never_completed_and_elapsed_grows():
    p = _play(duration=0, paused=False)
    assert p.elapsed(1030.0) == 30.0
    p.close(1600.0)
    assert p.played == 600.0 and not p.completed


def test_links():
    assert media_url("yt", "abc") == "https://www.youtube.com/watch?v=abc"
    assert media_url("vm", "1") == "https://vimeo.com/1"
    assert media_url("zz", "1") == "zz:1"


def test_counters_keep_distinct_users_per_utc_hour():
    b = Batch()
    t = 1_800_000_000.0  # 2027-01-15 08:00 UTC
    for name in ("alice", "bob", "alice"):
        b.message("c", name, t + 10)
    b.message("c", "alice", t + 3600)  # next hour
    b.join("c", t)
    b.play("c", t)
    b.command("c", t)
    h = b.hours[("c", hour_of(t))]
    assert (h.messages, h.joins, h.plays, h.commands, h.users) == (3, 1, 1, 1, {"alice", "bob"})
    assert b.hours[("c", hour_of(t + 3600))].users == {"alice"}
    u = b.users[("c", "alice")]
    assert (u.messages, u.first, u.last) == (3, t + 10, t + 3600)
    assert b.days() == {("c", day_of(hour_of(t)))}
    assert Batch().flush_id != b.flush_id and not Batch()


def test_links_are_the_pages_cytube_links_and_never_a_raw_id():
    assert link("yt", "dQw4w9WgXcQ") == "https://youtu.be/dQw4w9WgXcQ"
    assert link("vi", "76979871") == "https://vimeo.com/76979871"
    assert link("dm", "x7tgad0") == "https://dailymotion.com/video/x7tgad0"
    assert link("tw", "somestreamer") == "https://twitch.tv/somestreamer"
    assert link("sc", "https://soundcloud.com/a/b") == "https://soundcloud.com/a/b"
    assert link("fi", "https://example.com/v.mp4") == "https://example.com/v.mp4"
    assert link("cu", "cu:7vf7ZhUXdkdihPYsi0awztwtrvkSXOjOSBFoa94Eanc=") == ""
    assert link("rt", "rtmp://example.com/live/key") == ""  # no page to open
    assert link("yt", "a b<script>") == ""  # not an id a page can have
    assert link("zz", "whatever") == ""
