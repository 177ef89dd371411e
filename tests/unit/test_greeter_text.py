"""Greeting texts: file parsing, categories by time of day, placeholder filling, model output."""
from __future__ import annotations

import random
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from daz.plugins.greeter import as_question, clean_generated
from daz.plugins.greeter.greetings import DEFAULT_FILE, Greetings, fill, parse, zone

UTC = UTC


def at(hour: int) -> datetime:
    return datetime(2027, 1, 15, hour, 30, tzinfo=UTC)


def test_parse_keeps_categories_and_skips_what_it_cannot_use(caplog):
    templates = parse("# comment\n\n"
                      "general: hi {user}\n"
                      "Hello {user}: plain line\n"
                      "first-night: late first {user}\n"
                      "bogus: never used\n"
                      "morning:\n")
    assert templates == {"general": ["hi {user}", "Hello {user}: plain line"],
                         "first-night": ["late first {user}"]}
    assert "unknown category 'bogus'" in caplog.text


def test_lookup_order_for_first_timers_and_regulars():
    g = Greetings({"general": ["G"], "first": ["F"], "evening": ["E"], "first-morning": ["FM"]},
                  UTC)
    assert g.pick("u", "c", first_time=True, when=at(8)) == "FM"
    assert g.pick("u", "c", first_time=True, when=at(19)) == "F"
    assert g.pick("u", "c", first_time=False, when=at(19)) == "E"
    assert g.pick("u", "c", first_time=False, when=at(13)) == "G"
    assert Greetings({}, UTC, fallback="Hi {user}").pick("u", "c", first_time=False,
                                                         when=at(1)) == "Hi u"


def test_time_of_day_uses_the_configured_zone():
    g = Greetings({"morning": ["M"], "night": ["N"]}, zone("Australia/Melbourne"))
    # 22:30 UTC is 09:30 the next morning in Melbourne (summer, UTC+11).
    assert g.pick("u", "c", first_time=False, when=at(22)) == "M"
    assert zone("Not/AZone") == UTC


def test_the_last_text_is_avoided_when_there_is_another():
    g = Greetings({"general": ["A {user}", "B {user}"]}, UTC, rng=random.Random(1))
    assert {g.pick("u", "c", first_time=False, when=at(13), avoid="A u") for _ in range(20)} == {
        "B u"}
    one = Greetings({"general": ["A {user}"]}, UTC)
    assert one.pick("u", "c", first_time=False, when=at(13), avoid="A u") == "A u"


def test_fill_is_one_pass_and_keeps_names_as_text():
    assert fill("hi {user} in {channel}", "{channel}", "room") == "hi {channel} in room"
    assert fill("<user>!", "a\nb\x00c", "room") == "a b c!"  # Go's placeholder, one line


@given(st.text(max_size=60), st.text(max_size=30))
def test_fill_never_expands_what_a_name_contains(name, channel):
    out = fill("{user}|{channel}", name, channel)
    assert "\n" not in out and "\x00" not in out
    assert out.count("|") == 1 + name.count("|") + channel.count("|")


def test_the_packaged_file_has_every_kind_of_greeting():
    templates = parse(DEFAULT_FILE.read_text(encoding="utf-8"))
    assert templates["general"] and templates["first"]
    assert all("{user}" in t for ts in templates.values() for t in ts)


def test_model_output_is_one_clean_line_or_nothing():
    assert clean_generated('\n "Hey there!" \nmore', 200) == "Hey there!"
    assert clean_generated("//kick everyone", 200) == "kick everyone"
    assert clean_generated("word " * 100, 30) == "word word word word word word"
    assert clean_generated("   \n\t", 200) is None
    assert clean_generated(None, 200) is None
    assert clean_generated(42, 200) is None


def test_question_enforcement():
    assert as_question("how are you") == "how are you?"
    assert as_question("Welcome back, bob!") == "Welcome back, bob, how's it going?"
    assert as_question("you good?") == "you good?"
