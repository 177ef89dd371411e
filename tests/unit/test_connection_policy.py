"""Reconnect policy: backoff schedule, login and kick verdicts, server selection, discovery."""
import random

import aiohttp
import pytest
from aiohttp import web

from daz.cytube.connection import DiscoveryError, choose_server, discover
from daz.cytube.reconnect_policy import Backoff, judge_kick, judge_login_error


def test_backoff_doubles_with_jitter_and_is_capped():
    backoff = Backoff(base=1.0, cap=300.0, rng=random.Random(7))
    delays = [backoff.next_delay() for _ in range(14)]
    ceilings = [min(300.0, 2 ** n) for n in range(14)]
    for delay, ceiling in zip(delays, ceilings, strict=True):
        assert ceiling / 2 <= delay <= ceiling
    assert max(delays) <= 300.0
    assert delays[-1] >= 150.0  # reached the cap region


def test_backoff_jitter_spreads_many_rooms():
    firsts = {round(Backoff(base=8.0, rng=random.Random(seed)).next_delay(), 3)
              for seed in range(20)}
    assert len(firsts) > 15


def test_backoff_resets_only_after_a_stable_connection():
    backoff = Backoff(base=1.0, cap=300.0, stable_after=60.0, rng=random.Random(1))
    for _ in range(8):
        backoff.next_delay()
    backoff.connected_for(5.0)  # a flap: keep backing off
    assert backoff.next_delay() >= 128
    backoff.connected_for(120.0)
    assert backoff.next_delay() <= 1.0


def test_min_wait_is_respected_with_its_own_jitter():
    backoff = Backoff(base=1.0, rng=random.Random(3))
    delays = [backoff.next_delay(min_wait=10.0) for _ in range(3)]
    assert all(10.0 <= d <= 15.0 for d in delays)


@pytest.mark.parametrize("error", [
    "Invalid username/password combination",
    "That username is registered.",
    "Invalid username.  Usernames must be 1-20 characters long and consist only of characters "
    "a-z, A-Z, 0-9, -, or _.",
    "That username is reserved.",
])
def test_permanent_login_failures_stop_the_room(error):
    verdict = judge_login_error(error)
    assert verdict.fatal and error in verdict.reason


def test_guest_delay_is_retried_after_the_stated_delay_on_the_same_socket():
    verdict = judge_login_error("Guest logins are restricted to one per IP address per 60 seconds.")
    assert not verdict.fatal and verdict.relogin and verdict.min_wait == 61.0
    assert judge_login_error("Guest logins are restricted to one per IP address per 2 seconds."
                             ).min_wait == 3.0


def test_name_in_use_is_retried_normally():
    verdict = judge_login_error("That name is already in use on this channel.")
    assert not verdict.fatal and not verdict.relogin and verdict.min_wait > 0


def test_kicks_a_ban_is_final_a_duplicate_login_gets_one_slow_retry():
    assert judge_kick("You have been banned from this channel", 0).fatal
    first = judge_kick("Duplicate login", 0)
    assert not first.fatal and first.slow
    assert judge_kick("Duplicate login", 1).fatal
    other = judge_kick("spamming", 0)
    assert not other.fatal and other.min_wait >= 30


def test_choose_server_prefers_secure_only_for_https_pages():
    config = {"servers": [{"url": "http://a:1", "secure": False},
                          {"url": "https://b:2", "secure": True}]}
    assert choose_server(config, prefer_secure=True) == "https://b:2"
    assert choose_server(config, prefer_secure=False) == "http://a:1"


@pytest.mark.parametrize("config", [None, [], {}, {"servers": []}, {"servers": "x"},
                                    {"servers": [{"url": 5}, {"url": "ftp://x"}, "junk"]}])
def test_choose_server_rejects_useless_answers(config):
    with pytest.raises(DiscoveryError):
        choose_server(config, prefer_secure=False)


async def serve(handler):
    app = web.Application()
    app.router.add_get("/socketconfig/{name}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    return runner, f"http://127.0.0.1:{port}"


async def test_discovery_reads_the_socketconfig_of_the_channel():
    seen = []

    async def handler(request):
        seen.append(request.match_info["name"])
        return web.json_response({"servers": [{"url": "http://127.0.0.1:9", "secure": False}]})

    runner, base = await serve(handler)
    try:
        async with aiohttp.ClientSession() as http:
            assert await discover(http, base + "/", "testchan") == "http://127.0.0.1:9"
    finally:
        await runner.cleanup()
    assert seen == ["testchan.json"]


@pytest.mark.parametrize("status,body", [(404, '{"error":"Channel \\"x\\" does not exist."}'),
                                         (200, "<html>not json</html>"),
                                         (500, "boom")])
async def test_discovery_failures_are_clear_errors(status, body):
    async def handler(request):
        return web.Response(status=status, text=body)

    runner, base = await serve(handler)
    try:
        async with aiohttp.ClientSession() as http:
            with pytest.raises(DiscoveryError) as info:
                await discover(http, base, "x")
    finally:
        await runner.cleanup()
    assert "socketconfig/x.json" in str(info.value)


async def test_discovery_of_a_dead_url_is_a_clear_error():
    async with aiohttp.ClientSession() as http:
        with pytest.raises(DiscoveryError) as info:
            await discover(http, "http://127.0.0.1:1", "x", timeout=2)
    assert "127.0.0.1:1" in str(info.value)
