"""How the live instances split the rooms among themselves (scaleout.leases.fair_shares)."""
from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from daz.scaleout.leases import fair_shares, lease_key


def test_even_split_and_the_odd_room_goes_to_a_fixed_instance():
    assert fair_shares({"a": 0, "b": 0, "c": 0}, 12) == {"a": 4, "b": 4, "c": 4}
    assert fair_shares({"b": 0, "a": 0}, 5) == {"a": 3, "b": 2}


def test_a_capped_instance_leaves_the_rest_to_the_others():
    assert fair_shares({"a": 2, "b": 0, "c": 0}, 12) == {"a": 2, "b": 5, "c": 5}
    assert fair_shares({"a": 3}, 4) == {"a": 3}  # one room stays unheld: /health says so


@given(st.dictionaries(st.text(min_size=1, max_size=4), st.integers(0, 20), min_size=1,
                       max_size=8), st.integers(0, 200))
def test_shares_add_up_to_what_the_caps_allow(caps, rooms):
    shares = fair_shares(caps, rooms)
    allowed = rooms if 0 in caps.values() else min(rooms, sum(caps.values()))
    assert sum(shares.values()) == allowed
    assert all(not cap or shares[key] <= cap for key, cap in caps.items())
    uncapped = [shares[k] for k, cap in caps.items() if not cap]
    assert not uncapped or max(uncapped) - min(uncapped) <= 1


def test_the_same_account_in_the_same_channel_is_one_lease():
    assert lease_key("https://cytu.be/", "Lounge", "Bot") == lease_key("https://cytu.be",
                                                                      "lounge", "bot")
    assert lease_key("https://cytu.be", "lounge", "bot") != lease_key("https://cytu.be",
                                                                     "lounge", "other")
