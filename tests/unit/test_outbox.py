"""Outbox: splitting, slash neutralising, the send schedule under the server's flood limits,
cooldown handling (nothing lost, nothing twice), and the bounded queue. All with explicit times."""
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daz.cytube.outbox import Outbox, safe_limits
from daz.cytube.outgoing_text import (
    ELLIPSIS,
    SLASH_GUARD,
    neutralise_command,
    split_text,
    utf16_len,
)
from daz.sandbox.limits import ChatThrottle

# --------------------------------------------------------------------------- splitting

def test_short_text_is_one_chunk_unchanged():
    assert split_text("hello there") == ["hello there"]


def test_long_text_splits_on_word_boundaries_under_the_limit():
    words = [f"word{i:03d}" for i in range(100)]  # 799 chars
    chunks = split_text(" ".join(words), max_length=320)
    assert len(chunks) == 3
    assert all(len(c) <= 320 for c in chunks)
    assert " ".join(chunks).split() == words  # no word cut or lost


def test_a_word_longer_than_a_line_is_cut_hard():
    chunks = split_text("x" * 700, max_length=320)
    assert [len(c) for c in chunks] == [320, 320, 60]


def test_chunks_are_capped_and_the_last_is_marked_truncated():
    text = " ".join(["abcdefghi"] * 400)  # 4000 chars
    chunks = split_text(text, max_length=320, max_chunks=5)
    assert len(chunks) == 5
    assert chunks[-1].endswith(ELLIPSIS)
    assert not any(c.endswith(ELLIPSIS) for c in chunks[:-1])
    assert all(utf16_len(c) <= 320 for c in chunks)


def test_exactly_fitting_text_is_not_marked_truncated():
    text = " ".join(["a" * 319] * 5)
    chunks = split_text(text, max_length=320, max_chunks=5)
    assert len(chunks) == 5 and not chunks[-1].endswith(ELLIPSIS)


def test_newlines_start_new_messages_and_blank_lines_vanish():
    assert split_text("one\n\n  two  \nthree") == ["one", "two", "three"]


def test_control_characters_and_nul_become_spaces():
    assert split_text("a\x00b\tc\x7fd") == ["a b c d"]


def test_length_is_counted_as_the_server_does_in_utf16_units():
    emoji = "\U0001F600"  # two UTF-16 units
    chunks = split_text(emoji * 200, max_length=320)
    assert [utf16_len(c) for c in chunks] == [320, 80]


def test_empty_and_whitespace_text_gives_nothing():
    assert split_text("") == [] and split_text("  \n \t ") == []


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=3000), st.integers(min_value=2, max_value=400),
       st.integers(min_value=1, max_value=8))
def test_split_never_exceeds_limits(text, limit, cap):
    chunks = split_text(text, max_length=limit, max_chunks=cap)
    assert len(chunks) <= cap
    assert all(0 < utf16_len(c) <= limit for c in chunks)
    assert all(c == c.strip() or c.endswith(ELLIPSIS) for c in chunks)


# --------------------------------------------------------------------------- slash

@pytest.mark.parametrize("text", ["/kick bob", "  /clear", "/afk", "/me dances"])
def test_a_leading_slash_is_guarded_with_an_invisible_non_trimmed_character(text):
    guarded = neutralise_command(text)
    assert guarded.startswith(SLASH_GUARD + "/")
    # JavaScript's trim() does not remove U+200B, so the server's indexOf("/") === 0 fails.
    assert not guarded.strip(" \t\n\r\x0b\x0c\xa0\ufeff").startswith("/")


def test_text_without_a_leading_slash_is_untouched():
    assert neutralise_command("a/b and /c") == "a/b and /c"


def test_user_input_lines_are_guarded_in_every_chunk_but_bot_text_is_not():
    box = Outbox()
    box.put_chat("/clear", user_input=True)
    box.put_chat(("x" * 318) + " /kick everyone", user_input=True)  # second chunk starts with /
    box.put_chat("/me waves", user_input=False)
    texts = [m.text for m in box.queue]
    assert texts[0] == SLASH_GUARD + "/clear"
    assert texts[2] == SLASH_GUARD + "/kick everyone"
    assert texts[3] == "/me waves"
    assert all(utf16_len(t) <= 320 for t in texts)


def test_pm_keeps_recipient_and_is_split_too():
    box = Outbox()
    assert box.put_pm("bob", "y" * 400) == 2
    # the slash guard costs a unit only on a line that needs it, so a plain line fills 320
    assert [(m.to, len(m.text)) for m in box.queue] == [("bob", 320), ("bob", 80)]


# --------------------------------------------------------------------------- rate

def drain(box: Outbox, start: float, until: float, step: float = 0.01) -> list[float]:
    """Simulate the pump: send whenever the outbox allows; returns the send times."""
    sent, now = [], start
    while now <= until and box.depth:
        delay = box.delay(now)
        if delay == 0:
            box.pop(now)
            box.in_flight.clear()  # answered
            sent.append(now)
        else:
            now += max(step, delay)
    return sent


def max_in_window(times: list[float], window: float) -> int:
    best = 0
    for i, t in enumerate(times):
        best = max(best, sum(1 for u in times[i:] if u < t + window))
    return best


class ManualClock:
    def __init__(self):
        self.now = 0.0

    def monotonic(self):
        return self.now


def server_would_drop(times: list[float], burst: int, rate: float,
                      cooldown: float | None = None) -> int:
    """Lines the server's limiter (as measured; the fake server's ChatThrottle) would drop,
    with 20 ms of network jitter against us on every line."""
    clock = ManualClock()
    throttle = ChatThrottle(clock)
    dropped = 0
    for i, t in enumerate(times):
        clock.now = t + (0.02 if i % 2 == 0 else 0.0)  # alternate delays shrink the gaps
        dropped += throttle.should_drop(burst, rate, cooldown)
    return dropped


def test_default_schedule_is_a_burst_of_15_then_8_per_second():
    box = Outbox()
    for i in range(100):
        box.put_chat(f"line {i}")
    times = drain(box, 0.0, 60.0)
    assert len(times) == 100
    assert sum(1 for t in times if t == 0.0) == 15
    assert max_in_window(times[15:], 1.0) <= 8
    assert server_would_drop(times, 20, 10.0) == 0
    assert times[-1] == pytest.approx(85 / 8, abs=0.05)


def test_a_token_bucket_would_have_been_dropped_but_we_are_not():
    """The server gives the burst back only after a quiet period: after a short pause a token
    bucket would burst again and lose lines; we keep spacing them."""
    box = Outbox()
    times = []
    for i in range(20):
        box.put_chat(str(i))
    times += drain(box, 0.0, 10.0)
    for i in range(10):
        box.put_chat(str(i))
    times += drain(box, times[-1] + 1.0, 20.0)  # 1 s pause: < the server's 2 s cooldown
    gaps = [b - a for a, b in itertools.pairwise(times[20:])]
    assert min(gaps) >= 0.125 - 1e-9
    assert server_would_drop(times, 20, 10.0) == 0


def test_antiflood_limits_are_kept_safely_under():
    burst, rate, quiet = safe_limits(4, 1.0, 4)
    assert (burst, rate, quiet) == (3, 0.8, 5.25)
    box = Outbox()
    box.set_limits(burst, rate, quiet)
    for i in range(12):
        box.put_chat(f"line {i}")
    times = drain(box, 0.0, 60.0)
    assert len(times) == 12 and sum(1 for t in times if t == 0) == 3
    assert server_would_drop(times, 4, 1.0, 4) == 0
    gaps = [b - a for a, b in itertools.pairwise(times[3:])]
    assert min(gaps) >= 1 / 0.8 - 0.02


def test_a_fresh_burst_only_after_a_quiet_period():
    box = Outbox()
    box.put_chat("a")
    drain(box, 0.0, 1.0)
    for i in range(40):
        box.put_chat(str(i))
    times = drain(box, 100.0, 200.0)
    assert sum(1 for t in times if t == 100.0) == 15
    assert server_would_drop(times, 20, 10.0) == 0


def test_delay_is_none_when_empty():
    assert Outbox().delay(5.0) is None


# --------------------------------------------------------------------------- server feedback

def test_cooldown_requeues_exactly_the_dropped_line_first_and_pauses():
    box = Outbox()
    for text in ("one", "two", "three", "four"):
        box.put_chat(text)
    for _ in range(3):
        box.pop(0.0)
    # answers come in send order: "one" delivered, "two" dropped (cooldown), "three" delivered
    assert box.echo("chat", "one", 0.01).text == "one"
    dropped = box.cooldown(1000, 0.02)
    assert dropped.text == "two"
    assert box.echo("chat", "three", 0.03).text == "three"
    assert [m.text for m in box.queue] == ["two", "four"]
    assert box.delay(0.5) > 0  # paused for the server's 1000 ms
    assert box.delay(1.2) == 0
    sent = [box.pop(1.2).text, box.pop(3.0).text]
    assert sent == ["two", "four"]
    assert box.resent == 1


def test_an_echo_answers_every_line_sent_before_it():
    box = Outbox()
    for text in ("a", "b", "c"):
        box.put_chat(text)
        box.pop(0.0)
    box.echo("chat", "c", 0.1)  # "a" and "b" were answered earlier (e.g. changed by a filter)
    assert not box.in_flight
    assert box.cooldown(100, 0.2) is None  # a stray cooldown requeues nothing
    assert box.depth == 0


def test_echo_match_ignores_the_slash_guard_and_whitespace():
    box = Outbox()
    box.put_chat("/clear   now", user_input=True)
    box.pop(0.0)
    assert box.echo("chat", "/clear now", 0.1) is not None
    assert not box.in_flight


def test_failed_pm_is_answered_and_not_resent():
    box = Outbox()
    box.put_pm("ghost", "hello")
    box.put_chat("after")
    box.pop(0.0)
    box.pop(0.0)
    assert box.failed("pm", 0.1).to == "ghost"
    box.cooldown(100, 0.2)  # the chat line was dropped, not the PM
    assert [(m.to, m.text) for m in box.queue] == [(None, "after")]


def test_unanswered_lines_expire_as_delivered():
    box = Outbox()
    box.put_chat("x")
    box.pop(0.0)
    box.expire(60.0)
    assert not box.in_flight


def test_lines_in_flight_when_the_socket_drops_are_sent_again_first():
    box = Outbox()
    for text in ("a", "b", "c"):
        box.put_chat(text)
    box.pop(0.0)
    box.pop(0.0)
    box.echo("chat", "a", 0.1)
    assert box.requeue_in_flight() == 1
    assert [m.text for m in box.queue] == ["b", "c"]


def test_unsent_message_goes_back_to_the_front():
    box = Outbox()
    box.put_chat("a")
    box.put_chat("b")
    message = box.pop(0.0)
    box.unsent(message)
    assert [m.text for m in box.queue] == ["a", "b"] and not box.in_flight


# --------------------------------------------------------------------------- bounded

def test_queue_is_bounded_and_drops_the_oldest_with_a_callback(caplog):
    dropped = []
    box = Outbox(max_queue=200, on_drop=dropped.append, room="r1")
    for i in range(250):
        box.put_chat(f"line {i}")
    assert box.depth == 200
    assert [m.text for m in dropped] == [f"line {i}" for i in range(50)]
    assert box.queue[0].text == "line 50" and box.queue[-1].text == "line 249"
    assert box.dropped == 50
    assert "outbox r1: dropped a chat" in caplog.text


def test_clear_drops_everything_and_reports():
    dropped = []
    box = Outbox(on_drop=dropped.append)
    box.put_chat("a")
    box.put_pm("b", "c")
    assert box.clear("stopped") == 2 and box.depth == 0 and len(dropped) == 2


def test_non_text_input_is_converted_not_raised():
    box = Outbox()
    assert box.put_chat(12345) == 1  # type: ignore[arg-type]
    assert box.queue[0].text == "12345"


def test_several_cooldowns_in_a_row_keep_the_original_order():
    box = Outbox()
    for i in range(8):
        box.put_chat(f"n{i}")
    for _ in range(8):
        box.pop(0.0)
    box.echo("chat", "n0", 0.01)
    box.echo("chat", "n1", 0.01)
    for _ in range(6):
        box.cooldown(200, 0.02)
    box.put_chat("later")
    assert [m.text for m in box.queue] == [f"n{i}" for i in range(2, 8)] + ["later"]
