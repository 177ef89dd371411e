"""The dashboard in a real browser: the whole bot (every default plugin, real PostgreSQL) fed by
the fake CyTube server, and headless Chromium loading /, /c/testchan, /help, the login and the
chat, PM and per-user pages. The figures shown are compared with the database; a chat line
``<script>alert(1)</script>``, a hostile media title and a hostile user name must show as text
and nothing may run. Screenshots are saved in the test's tmp_path.

The hostile user name cannot come through a real CyTube login (names are [A-Za-z0-9_-]); it is
sent as a hostile or broken server would send it, with a raw ``addUser`` and ``chatMsg``.
"""
from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.wait import WebDriverWait

from tests.e2e.harness import BOT_NAME, running_bot, wait_until
from tests.e2e.support import CHANNEL, flush_all, plugins

SCRIPT_LINE = "<script>alert(1)</script>"
HOSTILE_NAME = "<img src=x onerror=alert(3)>"
HOSTILE_TITLE = "<img src=x onerror=alert(2)> Title"
# Injected by DevTools before any page script: records alerts and CSP violations, so the test
# sees an attempt to run something even if the browser blocked it.
WATCHER = """
window.__alerts = []; window.__csp = [];
window.alert = function (m) { window.__alerts.push(String(m)); };
document.addEventListener('securitypolicyviolation',
                          function (e) { window.__csp.push(e.violatedDirective); });
"""


async def run(browser, method, *args):
    """Selenium blocks; the bot runs on this event loop, so the browser is driven from a thread."""
    return await asyncio.to_thread(getattr(browser, method), *args)


async def text_of(browser, css: str) -> str:
    return await asyncio.to_thread(lambda: browser.find_element(By.CSS_SELECTOR, css).text)


async def rows_of(browser, css: str) -> list[list[str]]:
    # Read in one script: the live view may replace the rows between two WebDriver calls.
    return await asyncio.to_thread(browser.execute_script, """
        return Array.from(document.querySelectorAll(arguments[0])).map(
            row => Array.from(row.querySelectorAll('td')).map(cell => cell.innerText.trim()));
        """, css)


async def assert_nothing_ran(browser, page: str) -> None:
    alerts = await run(browser, "execute_script", "return window.__alerts")
    violations = await run(browser, "execute_script", "return window.__csp")
    assert alerts == [] and violations == [], (page, alerts, violations)
    with pytest.raises(NoAlertPresentException):
        await asyncio.to_thread(lambda: browser.switch_to.alert.text)
    scripts = await run(browser, "execute_script",
                        "return Array.from(document.scripts).map(s => s.getAttribute('src'))")
    assert all(src and src.startswith("/static/") for src in scripts), (page, scripts)
    images = await run(browser, "execute_script", "return document.images.length")
    assert images == 0, page


async def shot(browser, tmp_path, name: str) -> None:
    path = tmp_path / f"{name}.png"
    await run(browser, "save_screenshot", str(path))
    assert path.stat().st_size > 5000


async def feed_the_channel(server) -> dict[str, int]:
    """People chat, one goes AFK, media plays; returns the lines each person sent."""
    server.add_account("alice", "alice-pw")
    server.set_channel_rank(CHANNEL, "alice", 3)
    alice = await server.user("alice")
    bob = await server.user("bob")
    carol = await server.user("carol")
    first = await server.queue_media(CHANNEL, {"id": "vidAAA", "title": "Morning Song",
                                               "seconds": 215, "type": "yt"})
    second = await server.queue_media(CHANNEL, {"id": "vidBBB", "title": HOSTILE_TITLE,
                                                "seconds": 3725, "type": "yt"})
    await server.play(CHANNEL, first)
    # Sent back to back: one sender's lines may share a CyTube millisecond, and all must count.
    for who, text in ((alice, "hello all"), (alice, "how is everyone"), (alice, "good song"),
                      (bob, SCRIPT_LINE), (bob, "nice & <b>bold</b>"), (carol, "hi")):
        await who.chat(text)
    await server.play(CHANNEL, second)
    await server.play(CHANNEL, first)  # played twice: "most played" has a 2
    await carol.afk()
    channel = server.channel(CHANNEL)
    server.broadcast(channel, "addUser", {"name": HOSTILE_NAME, "rank": 1, "profile": {},
                                          "meta": {"afk": False, "muted": False}})
    for n in range(2):
        server.broadcast(channel, "chatMsg", {"username": HOSTILE_NAME, "msg": f"line {n}",
                                              "meta": {}, "time": int(time.time() * 1000) + n})
    return {"alice": 3, "bob": 2, "carol": 1, HOSTILE_NAME: 2}


@pytest.mark.browser
async def test_dashboard_pages_in_chromium_match_the_database(fake_server, migrated_dsn,
                                                              tmp_path, browser):
    server = fake_server
    await run(browser, "execute_cdp_cmd", "Page.addScriptToEvaluateOnNewDocument",
              {"source": WATCHER})
    async with running_bot(server, migrated_dsn, tmp_path / "data", web=True,
                           plugins=plugins()) as bot:
        sent = await feed_the_channel(server)
        db = bot.db
        await wait_until(lambda: bot.room.state.user(HOSTILE_NAME) is not None
                         and bot.room.state.user("carol").afk, 10, "the room state")

        async def all_counted():
            await flush_all(bot)
            logged = await db.fetchval("SELECT count(*) FROM daz_chat_log WHERE channel = $1"
                                       " AND username = ANY($2::text[])", CHANNEL, list(sent))
            counted = await db.fetchval(
                "SELECT coalesce(sum(message_count), 0) FROM daz_analytics_hourly"
                " WHERE channel = $1", CHANNEL)
            plays = await db.fetchval(
                "SELECT count(*) FROM daz_mediatracker_plays WHERE channel = $1", CHANNEL)
            seen.update(logged=logged, counted=counted, plays=plays)
            return logged == sum(sent.values()) and counted == sum(sent.values()) and plays == 3
        seen: dict = {}
        try:
            await wait_until(all_counted, 15, "chat, counts and plays in the database")
        except AssertionError as exc:
            raise AssertionError(f"{exc}: {seen}, expected {sum(sent.values())} lines") from None
        base = bot.web.base_url

        async def serving():
            async with aiohttp.ClientSession() as http, http.get(base + "/") as r:
                return r.status == 200
        await wait_until(serving, 10, "the web server")

        # ------------------------------------------------------------------ /
        await run(browser, "get", base + "/")
        assert CHANNEL in await text_of(browser, "ul.cards")
        await shot(browser, tmp_path, "index")

        # ------------------------------------------------------------------ /c/testchan
        await run(browser, "get", f"{base}/c/{CHANNEL}")
        await wait_until(lambda: asyncio.to_thread(
            browser.execute_script, "return document.body.dataset.chartsReady"), 10, "charts")
        assert await run(browser, "execute_script",
                         "return document.body.dataset.chartsReady") == "1"
        active = await db.fetch("SELECT username, rank, is_afk FROM daz_user_tracker_sessions"
                                " WHERE channel = $1 AND is_active", CHANNEL)
        assert int(await text_of(browser, "#user-count")) == len(active)
        shown_users = {row[0].removesuffix(" (this bot)"): row for row in
                       await rows_of(browser, "#users tbody tr")}
        assert set(shown_users) == {r["username"] for r in active}
        assert {HOSTILE_NAME, "alice", "bob", "carol", BOT_NAME} <= set(shown_users)
        assert shown_users["alice"][1] == "3" and shown_users["carol"][2] == "AFK"

        messages_7d = await db.fetchval(
            "SELECT sum(message_count) FROM daz_analytics_hourly WHERE channel = $1", CHANNEL)
        assert int(await text_of(browser, "#messages-7d")) == messages_7d == sum(sent.values())
        assert int(await text_of(browser, "#active-users-7d")) == len(sent)
        # A channel that started today: the chart picks its last 24 hours, not 90 empty days.
        chart = await run(browser, "execute_script",
                          "return document.getElementById('activity-chart').dataset")
        assert (chart["range"], chart["points"], int(chart["messages"])) == \
            ("24h", "24", messages_7d)
        day_total = await db.fetchval(
            "SELECT sum(total_messages) FROM daz_analytics_daily WHERE channel = $1", CHANNEL)
        await run(browser, "execute_script",
                  "document.querySelector('#chart-ranges [data-range=\"90d\"]').click()")
        await wait_until(lambda: asyncio.to_thread(
            browser.execute_script, "return document.getElementById('activity-chart')"
            ".dataset.range === '90d' && document.body.dataset.chartsReady === '1'"), 10,
            "the 90 days chart")
        chart = await run(browser, "execute_script",
                          "return document.getElementById('activity-chart').dataset")
        assert (chart["points"], int(chart["messages"])) == ("90", day_total)

        top = await db.fetch("SELECT username, total_messages FROM daz_analytics_user_stats"
                             " WHERE channel = $1 ORDER BY total_messages DESC, username",
                             CHANNEL)
        shown_top = [(r[0], int(r[1])) for r in await rows_of(browser, "#top-chatters tbody tr")]
        assert shown_top == [(r["username"], r["total_messages"]) for r in top]
        assert dict(shown_top) == sent

        open_play = await db.fetchrow("SELECT title FROM daz_mediatracker_plays"
                                      " WHERE channel = $1 AND ended_at IS NULL", CHANNEL)
        assert await text_of(browser, "#now-playing .title") == open_play["title"] \
            == "Morning Song"
        stats = await db.fetch("SELECT title, play_count FROM daz_mediatracker_stats"
                               " WHERE channel = $1 ORDER BY play_count DESC, title", CHANNEL)
        shown_media = [(r[0], int(r[1])) for r in await rows_of(browser, "#top-media tbody tr")]
        assert shown_media == [(r["title"], r["play_count"]) for r in stats]
        assert shown_media == [("Morning Song", 2), (HOSTILE_TITLE, 1)]
        recent = await asyncio.to_thread(lambda: [
            li.find_element(By.CSS_SELECTOR, ".title").text
            for li in browser.find_elements(By.CSS_SELECTOR, "#recent-plays li")])
        assert recent == ["Morning Song", HOSTILE_TITLE, "Morning Song"]
        links = await asyncio.to_thread(lambda: [
            a.get_attribute("href") for a in browser.find_elements(By.CSS_SELECTOR, ".links a")])
        assert f"{base}/gallery/{CHANNEL}" in links and f"{base}/help" in links
        await assert_nothing_ran(browser, "dashboard")
        await shot(browser, tmp_path, "dashboard")

        # ------------------------------------------------------------------ /help
        await run(browser, "get", base + "/help")
        help_rows = await rows_of(browser, "#commands tbody tr")
        registry = bot.app.commands.all()
        assert len(help_rows) == len(registry) and len(registry) > 5
        by_name = {row[0].split()[0]: row for row in help_rows}
        for entry in registry:
            row = by_name["!" + entry.name]
            assert row[3] == ("bot admins" if entry.spec.admin_only
                              else f"{entry.spec.min_rank:g}")
            assert row[2] == ", ".join(entry.spec.aliases)
        await assert_nothing_ran(browser, "help")
        await shot(browser, tmp_path, "help")

        # ------------------------------------------------------------------ login, chat
        await run(browser, "get", f"{base}/c/{CHANNEL}/chat")
        assert (await run(browser, "execute_script", "return location.pathname")) == "/login"
        token = (tmp_path / "data" / "web-token").read_text().strip()  # generated at start
        await login(browser, "not-the-token")
        assert "Wrong token" in await text_of(browser, "#login-error")
        await shot(browser, tmp_path, "login-refused")
        await login(browser, token)
        assert (await run(browser, "execute_script", "return location.pathname")) \
            == f"/c/{CHANNEL}/chat"
        cookie = next(c for c in await run(browser, "get_cookies") if c["name"] == "daz_session")
        assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict"
        assert await run(browser, "execute_script", "return document.cookie") == ""
        chat = [(r[1], r[2]) for r in await rows_of(browser, "#chat tr")]
        assert ("bob", SCRIPT_LINE) in chat and ("bob", "nice & <b>bold</b>") in chat
        assert (HOSTILE_NAME, "line 0") in chat
        logged = await db.fetchval("SELECT count(*) FROM daz_chat_log WHERE channel = $1", CHANNEL)
        assert len(chat) == logged
        await assert_nothing_ran(browser, "chat")
        await shot(browser, tmp_path, "chat")

        # ------------------------------------------------------------------ per-user, PMs
        await run(browser, "get", f"{base}/c/{CHANNEL}")
        await asyncio.to_thread(follow_link, browser, HOSTILE_NAME)
        assert await text_of(browser, "h1") == f"{HOSTILE_NAME} in {CHANNEL}"
        assert (await text_of(browser, "#user-stats")).startswith("2 messages")
        await assert_nothing_ran(browser, "user")
        await shot(browser, tmp_path, "user")
        await run(browser, "get", f"{base}/c/{CHANNEL}/pms")
        assert await text_of(browser, "h1") == f"Private messages with daz in {CHANNEL}"
        await assert_nothing_ran(browser, "pms")


def follow_link(browser, text: str) -> None:
    link = browser.find_element(By.LINK_TEXT, text)
    link.click()
    WebDriverWait(browser, 10).until(expected_conditions.staleness_of(link))  # as in login()


async def login(browser, token: str) -> None:
    def submit():
        field = browser.find_element(By.NAME, "token")
        field.clear()
        field.send_keys(token)
        field.submit()
        # submit() can return before the browser has left the page: wait for the answer page,
        # or the next look at the location may still see the login form.
        WebDriverWait(browser, 10).until(expected_conditions.staleness_of(field))
    await asyncio.to_thread(submit)
