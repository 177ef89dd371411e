"""Shared fixtures of the unit tests."""
from __future__ import annotations

import pytest

from daz.clock import FakeClock
from tests.fakes.cytube import FakeCytubeServer


@pytest.fixture
async def server():
    """A started fake CyTube server on a fake clock, with accounts alice (owner of testchan) and
    bob (test_fake_cytube*.py)."""
    srv = FakeCytubeServer(clock=FakeClock())
    await srv.start()
    srv.add_account("alice", "alicepw1")
    srv.add_account("bob", "bobpw1")
    srv.set_channel_rank("testchan", "alice", 5)
    try:
        yield srv
    finally:
        await srv.stop()
