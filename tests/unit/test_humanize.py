"""daz.humanize: the one wording of user names, "… ago" and one-line text that tell, greeter,
analytics and usertracker share."""
from datetime import UTC, datetime, timedelta

import pytest

from daz.humanize import ago, clean_username, one_line

UTC = UTC
NOW = datetime(2027, 1, 15, tzinfo=UTC)


@pytest.mark.parametrize("text,expected", [
    ("@Bob:", "Bob"), ("bob,", "bob"), ("alice?", "alice"), ("carol!", "carol"),
    ("dave.", "dave"), ("  @x_y-z  ", "x_y-z"), ("a" * 20, "a" * 20),
])
def test_clean_username_drops_the_at_and_trailing_punctuation(text, expected):
    assert clean_username(text) == expected


@pytest.mark.parametrize("text", ["bad/name", "x" * 21, "é", "", "@", "bo b", "a\x00b", "?!"])
def test_clean_username_refuses_what_cytube_would_refuse(text):
    assert clean_username(text) is None


def test_one_line_flattens_control_and_format_characters():
    assert one_line("a\x00b\r\n c\u202e") == "a b c"
    assert one_line("  spaced   out\t\tline ") == "spaced out line"
    assert one_line("x" * 100_000, 60) == "x" * 60
    assert one_line("abc", None) == "abc" and one_line("", 10) == ""


def test_ago_takes_a_datetime_or_epoch_seconds_and_words_them_alike():
    naive_then = datetime(2027, 1, 14, 22, 0)  # a ``timestamp`` column: UTC without a zone
    assert ago(naive_then, NOW) == ago(naive_then, NOW.timestamp()) == "2 hours ago"
    assert ago(NOW - timedelta(minutes=1, seconds=5), NOW.timestamp()) == "1 minute ago"
    assert ago(NOW - timedelta(seconds=59), NOW) == "just now"  # tell and analytics said so
    assert ago(NOW - timedelta(seconds=60), NOW) == "1 minute ago"
    assert ago(NOW + timedelta(days=1), NOW) == "just now"  # a writer's clock ahead of ours
    assert ago(NOW - timedelta(days=3), NOW) == "3 days ago"
    assert ago(NOW - timedelta(days=90), NOW) == "3 months ago"
