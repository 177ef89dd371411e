"""Fixtures for the whole-bot end-to-end tests."""
from __future__ import annotations

import pytest

from tests.browser import browser  # noqa: F401 - the fixture, for the dashboard tests
from tests.fakes.cytube import FakeCytubeServer


@pytest.fixture
async def fake_server():
    """A started fake CyTube server on an ephemeral port, stopped after the test."""
    server = FakeCytubeServer()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
