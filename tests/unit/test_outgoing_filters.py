"""Outgoing lines are disarmed against the server's default chat filters (outgoing_text.py):
what the room is shown reads as what daz meant, and every line still fits the server's limit."""
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daz.cytube.chat_filters import shown_text
from daz.cytube.outbox import Outbox
from daz.cytube.outgoing_text import (
    LOOKALIKES,
    SLASH_GUARD,
    disarm_filters,
    meant_text,
    outgoing_lines,
    utf16_len,
)
from daz.sandbox.chat_format import to_html

FORMATTING = re.compile(r"<(code|strong|em|s|span)\b")


def shown(line: str) -> str:
    """What the room reads of a line daz sent, through the fake server's default filters."""
    msg = to_html(line)
    assert not FORMATTING.search(msg), msg
    return shown_text(msg)


@pytest.mark.parametrize("meant", [
    "!gallery_lock, !gallery_unlock", "hey cool_guy_99", "Now playing: *Best* of `2024`",
    "a*b*c", "~~gone~~ and [sp]secret[/sp] and [SP]loud[/Sp]", "`bob` isn't a name",
    "_*`~~[sp]x[/sp]~~`*_",
])
def test_the_room_reads_what_daz_meant(meant):
    assert meant_text(shown(disarm_filters(meant))) == meant


def test_only_markers_that_would_pair_are_touched():
    assert disarm_filters("cool_guy_99") == "cool" + LOOKALIKES["_"] + "guy_99"
    assert disarm_filters("a_b and 2*3") == "a_b and 2*3"
    assert disarm_filters("a*b*c*d") == "a\u2217b\u2217c*d"


def test_urls_are_left_alone():
    url = "https://youtu.be/ab_cd_ef*g*"
    line = disarm_filters(f"_see_ {url} _")
    assert url in line
    assert meant_text(shown(line)) == f"_see_ {url} _"
    assert f'href="{url}"' in to_html(line)


def test_a_longer_marker_gets_an_invisible_break():
    assert disarm_filters("~~x~~") == "~\u200b~x~~"
    assert disarm_filters("[sp]x[/sp]") == "[\u200bsp]x[/sp]"


def test_every_line_is_prepared_in_the_outbox():
    box = Outbox()
    box.put_chat("hey cool_guy_99")
    box.put_pm("cool_guy_99", "/clear *now*")
    chat, pm = [m.text for m in box.queue]
    assert meant_text(shown(chat)) == "hey cool_guy_99"
    assert pm.startswith(SLASH_GUARD + "/") and meant_text(shown(pm)) == "/clear *now*"
    assert box.queue[1].to == "cool_guy_99"  # the recipient is a name, never disarmed


def test_a_chat_command_daz_means_to_run_keeps_its_arguments():
    assert outgoing_lines("/kick cool_guy_99 _spam_", user_input=False) == [
        "/kick cool_guy_99 _spam_"]


def test_disarming_never_pushes_a_line_over_the_limit():
    for text in ["~~" * 400, "[sp]" * 200, "~~ " * 300, "x" * 318 + "~~a~~"]:
        lines = outgoing_lines(text)
        assert lines and all(utf16_len(line) <= 320 for line in lines)
        for line in lines:
            shown(line)


markers = st.lists(st.sampled_from(list("ab _*`~[]/sp\u2028") + [
    "[sp]", "[/sp]", "[SP]", " http://x.io/a_b*c ", "http://y.io/_*", "~~", "&", "<i>"]),
    max_size=60).map("".join)


@settings(max_examples=400, deadline=None)
@given(markers)
def test_any_line_reads_as_meant(meant):
    lines = outgoing_lines(meant)
    assert all(utf16_len(line) <= 320 for line in lines)
    read = " ".join(meant_text(shown(line)) for line in lines)
    assert read.split() == meant.split()


@settings(max_examples=100, deadline=None)
@given(st.lists(markers, min_size=5, max_size=20).map(" ".join))
def test_long_lines_are_split_and_still_read_as_meant(meant):
    lines = outgoing_lines(meant, max_chunks=50)
    assert all(utf16_len(line) <= 320 for line in lines)
    read = "".join(meant_text(shown(line)) for line in lines)
    assert "".join(read.split()) == "".join(meant.split())
