"""The one cleaning that makes text storable, and the one check of a batched user name."""
from daz.db.text import NAME_LIMIT, clean_text, storable_name
from daz.plugins.eventfilter.history import clean
from daz.plugins.mediatracker.plays import db_text
from daz.plugins.sql import eventrows


def test_clean_text_replaces_nul_and_lone_surrogates_and_cuts():
    assert clean_text("a\x00b") == "a\ufffdb"
    assert clean_text("x\ud83dy\udc00") == "x\ufffdy\ufffd"
    assert clean_text("ok 😀 ünï") == "ok 😀 ünï"
    assert clean_text("abcdef", 3) == "abc"
    assert clean_text(None) == "" and clean_text(12) == "12"
    assert clean_text("\ud83d" * 10, 4).encode("utf-8") == "\ufffd".encode() * 4
    assert eventrows.clean_text is clean_text  # the event log uses the same one


def test_media_text_and_history_text_are_encodable():
    assert db_text("title \ud83d\x00 end", 1000) == "title \ufffd end"  # NUL dropped as before
    assert db_text(None, 10) == "" and db_text("x" * 50, 10) == "x" * 10
    assert clean("arg\x07\ud800", 500) == "arg\ufffd"
    for text in (db_text("\udfff" * 3, 100), clean("\ud800\x00", 10)):
        text.encode("utf-8")  # would raise UnicodeEncodeError on a lone surrogate


def test_storable_name():
    assert storable_name("alice") and storable_name("a" * NAME_LIMIT)
    for bad in ("", "a" * (NAME_LIMIT + 1), "a\x00b", "ev\ud83dil", None, 42, ["x"]):
        assert not storable_name(bad), bad
