"""CyTube's chat filters (cytube/chat_filters.py) as the fake server applies them, and reading
the server's HTML back into what the person typed."""
import re

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from daz.cytube.chat_filters import (
    DEFAULT_FILTERS,
    ChatFilter,
    apply_filters,
    compile_js,
    shown_text,
    split_links,
    typed_text,
)
from daz.sandbox.chat_format import balance_tags, to_html

LINK_ATTRS = 'target="_blank" rel="noopener noreferrer"'


# ------------------------------------------------------------------ the server's side


def test_the_reference_observations():
    assert to_html("!tell cool_guy_99 call me") == "!tell cool<em>guy</em>99 call me"
    assert (to_html("!gallery_lock, !gallery_unlock")
            == "!gallery<em>lock, !gallery</em>unlock")


def test_each_default_filter():
    assert to_html("`x` *y* _z_ ~~w~~ [sp]v[/sp]") == (
        '<code>x</code> <strong>y</strong> <em>z</em> <s>w</s> <span class="spoiler">v</span>')


def test_the_spoiler_ignores_case_and_may_be_empty():
    assert to_html("[SP]a[/Sp] [sP][/sp]") == (
        '<span class="spoiler">a</span> <span class="spoiler"></span>')


def test_other_markers_need_something_between_them():
    for text in ["**", "__", "``", "~~~~", "a*", "[sp][sp]"]:
        assert to_html(text) == text


@pytest.mark.parametrize("terminator", ["\n", "\r", "\u2028", "\u2029"])
def test_a_dot_never_matches_a_javascript_line_terminator(terminator):
    text = f"*a{terminator}b* _{terminator}_"
    assert to_html(text) == text
    assert to_html("*a\tb\u0085c*") == "<strong>a\tb\u0085c</strong>"  # others are fine


def test_matches_are_lazy_and_global():
    assert to_html("*a* *b* c*d*") == "<strong>a</strong> <strong>b</strong> c<strong>d</strong>"
    assert to_html("**a**") == "<strong>*a</strong>*"


def test_nested_and_adjacent_markers():
    assert to_html("*_a_*") == "<strong><em>a</em></strong>"
    assert to_html("`*a*`") == "<code><strong>a</strong></code>"
    assert to_html("*a**b*") == "<strong>a</strong><strong>b</strong>"
    assert to_html("_a__b_") == "<em>a</em><em>b</em>"


def test_crossed_markers_are_repaired_as_the_sanitizer_does():
    # bold first: <strong>a_b</strong>c_, then italic crosses it; the parser closes <em> with
    # </strong> and drops the stray </em>
    assert to_html("*a_b*c_") == "<strong>a<em>b</em></strong>c"
    assert balance_tags("<b>a<i>b</b>c</i>") == "<b>a<i>b</i></b>c"
    assert balance_tags("<em>open") == "<em>open</em>"
    assert balance_tags("x</s>y") == "xy"


def test_links_are_never_filtered():
    url = "http://example.com/a_b_c_/x*y*z"
    assert to_html(f"_see_ {url} _now_") == (
        f'<em>see</em> <a href="{url}" {LINK_ATTRS}>{url}</a> <em>now</em>')
    # a pair around a link is two pieces, filtered apart
    assert to_html("*look http://x.io/ here*") == (
        f'*look <a href="http://x.io/" {LINK_ATTRS}>http://x.io/</a> here*')


def test_without_link_conversion_links_stay_text_and_unfiltered():
    assert (to_html("_a_ http://x.io/a_b_c", convert_links=False)
            == "<em>a</em> http://x.io/a_b_c")


def test_filters_run_on_the_escaped_text():
    assert to_html("*<b>&*") == "<strong>&lt;b&gt;&amp;</strong>"


def test_a_channel_can_have_its_own_filters_or_none():
    shout = ChatFilter("shout", "(\\w+)!!", "", "<b>\\1</b>")  # not global: once
    assert to_html("hey!! you!!", filters=[shout]) == "<b>hey</b> you!!"
    assert to_html("_a_ *b*", filters=[]) == "_a_ *b*"
    off = ChatFilter("italic", "_(.+?)_", "g", "<em>\\1</em>", active=False)
    assert to_html("_a_", filters=[off]) == "_a_"
    two = ChatFilter("swap", "(a)(b)", "g", "\\2\\1\\3")  # no group 3: kept as written
    assert apply_filters("abab", [two]) == "ba\\3ba\\3"


def test_filters_from_cytube_json_are_checked():
    data = {"name": "x", "source": "x(.)", "flags": "gi", "replace": "\\1",
            "active": True, "filterlinks": False}
    assert ChatFilter.from_payload(data).payload() == data
    for bad, why in [({"source": "a"}, "name"), ({"name": "n", "source": ""}, "source"),
                     ({"name": "n", "source": "a", "flags": "gx"}, "flags"),
                     ({"name": "n", "source": "(", "flags": "g"}, "pattern"), ([], "object")]:
        with pytest.raises(ValueError, match=why):
            ChatFilter.from_payload(bad)


def test_javascript_regex_meaning():
    assert compile_js("[^]+", "").fullmatch("a\nb")
    assert compile_js("a[]", "").search("a") is None
    assert compile_js("a$", "").search("a\n") is None  # JS $ is the very end
    assert compile_js("a.b", "s").fullmatch("a\nb")
    # JS case folding never maps the Kelvin sign or the long s onto ASCII letters
    assert compile_js("k", "i").search("\u212a") is None
    assert compile_js("[sp]", "i").search("\u017f") is None
    assert compile_js("\\w+", "").fullmatch("é") is None  # JS \w is ASCII


def test_split_links_keeps_every_character():
    pieces = list(split_links("a http://x.io/p b ftp://h:21/ c"))
    assert pieces == [("a ", False), ("http://x.io/p", True), (" b ", False),
                      ("ftp://h:21/", True), (" c", False)]
    assert list(split_links("")) == [("", False)]


# ------------------------------------------------------------------ back to the typed text


@pytest.mark.parametrize("typed", [
    "!tell cool_guy_99 call me", "a*b*c", "`bob` said *hi* _there_ ~~no~~ [sp]x[/sp]",
    "*_a_*", "**a**", "see http://x.com/a_b_c and _this_", "<b>&amp;</b> _x_ &lt;",
    "*look http://x.io/ here*", "_a_\u2028_b_", "x ~~~ y ~~ z",
])
def test_typed_text_undoes_the_filters(typed):
    assert typed_text(to_html(typed)) == typed


def test_what_cannot_come_back():
    assert typed_text(to_html("[SP]x[/Sp]")) == "[sp]x[/sp]"  # spoilers come back lower-case
    assert typed_text(to_html("*a_b*c_")) == "*a_b_*c"  # the sanitizer dropped the last _


def test_tags_not_made_by_the_default_filters_leave_their_text():
    assert typed_text('<b>bold</b> <span class="x">s</span> <img src="a">') == "bold s "
    assert typed_text('<span class="spoiler"><span>a</span></span>') == "[sp]a[/sp]"
    assert shown_text('<em>a</em> <a href="u">u</a> &amp;') == "a u &"


def test_plain_text_passes_through_untouched():
    text = "nothing to see here"
    assert typed_text(text) is text


def _unrepaired_html(text: str) -> str:
    """The server's msg before the sanitizer (for telling crossed pairs apart)."""
    return "".join(piece if link else apply_filters(piece, DEFAULT_FILTERS)
                   for piece, link in split_links(_escape(text)))


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


hostile = st.lists(st.sampled_from(list("ab _*`~[]/sp<>&;\"'\u2028") + [
    "[sp]", "[/sp]", " http://x.io/a_b*c ", "http://y.io/_*", "~~", "&amp;", "<em>"]),
    max_size=30).map("".join)


@settings(max_examples=400, deadline=None)
@given(hostile)
def test_round_trip_typed_to_server_html_to_typed(typed):
    msg = to_html(typed)
    assume(balance_tags(_unrepaired_html(typed)) == _unrepaired_html(typed))
    assert typed_text(msg) == typed


@settings(max_examples=200, deadline=None)
@given(hostile)
def test_the_filters_never_leave_crossed_or_open_tags(typed):
    tags = re.findall(r"<(/?)(\w+)", to_html(typed))
    depth: list[str] = []
    for closing, name in tags:
        if closing:
            assert depth and depth.pop() == name
        else:
            depth.append(name)
    assert not depth
