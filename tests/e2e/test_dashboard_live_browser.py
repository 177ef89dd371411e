"""The dashboard stays live in a real browser: with /c/testchan open in headless Chromium, a
person joining the fake CyTube room, a chat line, a new video and a person leaving all show on
the page within 2 s, without a reload (server-sent events from /c/<channel>/live)."""
from __future__ import annotations

import asyncio
import time

import pytest

from tests.e2e.harness import running_bot, wait_until
from tests.e2e.support import CHANNEL, plugins

LIVE_WITHIN = 2.0  # seconds from the event in the room to the page showing it


async def page_value(browser, script: str):
    return await asyncio.to_thread(browser.execute_script, script)


async def shown_names(browser) -> list[str]:
    # One script: the live view replaces the rows, so element handles would go stale.
    return await asyncio.to_thread(browser.execute_script, """
        return Array.from(document.querySelectorAll('#users tbody td.name a'))
            .map(a => a.textContent);""")


async def within(seconds: float, check, what: str) -> float:
    """Wait until ``check()`` is true; returns how long it took (fails past ``seconds``)."""
    started = time.monotonic()
    while not await check():
        if time.monotonic() - started > seconds:
            raise AssertionError(f"{what}: not on the page within {seconds} s")
        await asyncio.sleep(0.05)
    return time.monotonic() - started


@pytest.mark.browser
async def test_a_join_a_line_a_video_and_a_leave_appear_without_a_reload(
        fake_server, migrated_dsn, tmp_path, browser):
    server = fake_server
    async with running_bot(server, migrated_dsn, tmp_path / "data", web=True,
                           plugins=plugins()) as bot:
        alice = await server.user("alice")
        await wait_until(lambda: bot.room.state.user("alice") is not None, 10, "alice")
        await asyncio.to_thread(browser.get, f"{bot.web.base_url}/c/{CHANNEL}")
        await within(10, lambda: page_value(
            browser, "return Number(document.body.dataset.liveUpdates || 0) > 0"),
            "the live stream")
        await asyncio.to_thread(browser.execute_script, "window.__notReloaded = true")
        assert "alice" in await shown_names(browser)
        assert "dave" not in await shown_names(browser)
        count_before = int(await page_value(
            browser, "return document.getElementById('user-count').textContent"))
        messages_before = int(await page_value(
            browser, "return document.getElementById('messages-7d').textContent"))

        dave = await server.user("dave")
        took = await within(LIVE_WITHIN, lambda: _has(browser, "dave"), "dave's join")
        assert int(await page_value(
            browser, "return document.getElementById('user-count').textContent")) \
            == count_before + 1

        await dave.chat("hello, I just got here")
        await alice.chat("welcome dave")
        await within(LIVE_WITHIN, lambda: page_value(
            browser, f"return Number(document.getElementById('messages-7d').textContent)"
                     f" === {messages_before + 2}"), "the message counter")

        uid = await server.queue_media(CHANNEL, {"id": "vidLIVE", "title": "Live Premiere",
                                                 "seconds": 95, "type": "yt"})
        await server.play(CHANNEL, uid)
        await within(LIVE_WITHIN, lambda: page_value(
            browser, "return document.querySelector('#now-playing .title')?.textContent"
                     " === 'Live Premiere'"), "now playing")

        await dave.leave()
        await within(LIVE_WITHIN, lambda: _gone(browser, "dave"), "dave's leave")
        assert await page_value(browser, "return window.__notReloaded") is True  # same page
        await asyncio.to_thread(browser.save_screenshot, str(tmp_path / "live.png"))
        assert took < LIVE_WITHIN


async def _has(browser, name: str) -> bool:
    return name in await shown_names(browser)


async def _gone(browser, name: str) -> bool:
    return name not in await shown_names(browser)
