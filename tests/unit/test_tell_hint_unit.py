"""RecipientHint: a name may be dropped only when nothing stored here can have been missed."""
from __future__ import annotations

from daz.plugins.tell.hint import RecipientHint


def test_an_unknown_channel_looks_up_everyone_until_loaded():
    hint = RecipientHint()
    assert hint.may_have("chan", "anyone") and not hint.known("chan")
    hint.load("chan", {"Bob"}, hint.mark())
    assert hint.known("chan")
    assert hint.may_have("chan", "BOB") and not hint.may_have("chan", "carol")
    assert hint.may_have("other", "carol")  # another channel is still unknown
    hint.forget("chan")
    assert hint.may_have("chan", "carol")


def test_a_store_here_is_known_at_once_and_dropped_after_a_later_claim():
    hint = RecipientHint()
    hint.load("chan", set(), hint.mark())
    hint.stored("chan", "Bob")
    assert hint.may_have("chan", "bob")
    hint.settled("chan", "bob", hint.mark())
    assert not hint.may_have("chan", "bob")


def test_a_store_while_a_claim_runs_keeps_the_name():
    hint = RecipientHint()
    hint.load("chan", {"bob"}, hint.mark())
    since = hint.mark()  # the claim's query starts ...
    hint.stored("chan", "bob")  # ... a new tell commits that it may not have seen ...
    hint.settled("chan", "bob", since)  # ... and it found nothing
    assert hint.may_have("chan", "bob")
    hint.settled("chan", "bob", hint.mark())  # a later claim did see it
    assert not hint.may_have("chan", "bob")


def test_a_reload_keeps_names_stored_while_its_query_ran():
    hint = RecipientHint()
    hint.load("chan", set(), hint.mark())
    hint.stored("chan", "early")  # committed before the query: the query sees it
    since = hint.mark()
    hint.stored("chan", "late")  # committed while the query ran
    hint.load("chan", {"early"}, since)
    assert hint.may_have("chan", "early") and hint.may_have("chan", "late")
    assert not hint.may_have("chan", "other")
    # The next reload that no longer lists them drops them (delivered elsewhere).
    hint.load("chan", set(), hint.mark())
    assert not hint.may_have("chan", "early") and not hint.may_have("chan", "late")


def test_stores_in_an_unknown_channel_count_once_it_loads():
    hint = RecipientHint()
    since = hint.mark()
    hint.stored("chan", "bob")  # before the first load finished
    hint.load("chan", set(), since)
    assert hint.may_have("chan", "bob")
