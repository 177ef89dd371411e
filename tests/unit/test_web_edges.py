"""Web edge cases: NUL and lone-surrogate input answer 404/400 (never a 500), the login throttle
never refuses the right token, and behind a trusted reverse proxy it counts the real client."""
from __future__ import annotations

import json
import logging
from types import SimpleNamespace

import pytest
from aiohttp.test_utils import TestClient, TestServer
from multidict import CIMultiDict

from daz.config import ConfigError, load_config
from daz.web.auth import client_address, trusted_networks
from daz.web.server import WebServer
from tests.unit.test_web import StubApp

PROXY_TOKEN = "sekrit-token"


async def started(tmp_path, trusted: list[str] | None = None) -> TestClient:
    app = StubApp(tmp_path)
    if trusted is not None:
        app.config.core.web.trusted_proxies = trusted
    client = TestClient(TestServer(WebServer(app).build()))
    await client.start_server()
    return client


async def login(client, token: str, forwarded: str | None = None) -> int:
    headers = {"X-Forwarded-For": forwarded} if forwarded else {}
    r = await client.post("/login", data={"token": token}, headers=headers,
                          allow_redirects=False)
    return r.status


@pytest.mark.parametrize("path", [
    "/c/%00", "/c/%00/chat", "/c/%00/data.json", "/c/testchan/u/%00", "/c/testchan/u/a%00b",
    "/static/%00", "/static/a%00.css"])
async def test_a_nul_in_the_path_is_404_not_500(tmp_path, path, caplog):
    client = await started(tmp_path)
    try:
        with caplog.at_level(logging.ERROR):
            r = await client.get(path, allow_redirects=False)
        assert r.status == 404, (path, r.status, await r.text())
        assert "Traceback" not in caplog.text and "Error handling request" not in caplog.text
    finally:
        await client.close()


@pytest.mark.parametrize("query", ["next=%00", "x=%00", "%00=1"])
async def test_a_nul_in_the_query_is_400(tmp_path, query):
    client = await started(tmp_path)
    try:
        for path in ("/login", "/c/testchan/data.json", "/help"):
            r = await client.get(f"{path}?{query}", allow_redirects=False)
            assert r.status == 400, (path, query, r.status)
    finally:
        await client.close()


async def test_odd_login_forms_are_a_wrong_token_not_a_crash(tmp_path):
    client = await started(tmp_path)
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    try:
        for body in ("token=%00", "token=a%ED%A0%80b", f"token={PROXY_TOKEN}%00", "",
                     "token=%FF%FE"):
            r = await client.post("/login", data=body, headers=form, allow_redirects=False)
            assert r.status == 403, (body, r.status)
        r = await client.post("/login", data=f"token={PROXY_TOKEN}&next=%2F%00%ED%A0%80",
                              headers=form, allow_redirects=False)
        assert r.status == 302 and r.headers["Location"].startswith("/%00")
    finally:
        await client.close()


async def test_without_a_trusted_proxy_the_forwarded_header_is_ignored(tmp_path):
    client = await started(tmp_path)
    try:
        for i in range(10):  # a guesser pretending to be ten different clients
            assert await login(client, "guess", forwarded=f"203.0.113.{i}") == 403
        assert await login(client, "guess", forwarded="198.51.100.1") == 429
        assert await login(client, PROXY_TOKEN) == 302  # the owner still gets in
    finally:
        await client.close()


async def test_behind_a_trusted_proxy_the_real_client_is_throttled_not_everyone(tmp_path):
    client = await started(tmp_path, trusted=["127.0.0.0/8", "::1"])
    try:
        guesser, owner = "203.0.113.9", "198.51.100.7"
        for _ in range(10):
            assert await login(client, "guess", forwarded=guesser) == 403
        assert await login(client, "guess", forwarded=guesser) == 429
        # The guesser writes the owner's address into the header; the proxy appends the real
        # one, and only the hop the proxy added is believed.
        assert await login(client, "guess", forwarded=f"{owner}, {guesser}") == 429
        assert await login(client, "guess", forwarded=owner) == 403  # not locked out
        assert await login(client, PROXY_TOKEN, forwarded=owner) == 302
        assert await login(client, PROXY_TOKEN, forwarded=guesser) == 302  # right token: in
    finally:
        await client.close()


def request(remote: str, *forwarded: str):
    headers = CIMultiDict(("X-Forwarded-For", value) for value in forwarded)
    return SimpleNamespace(remote=remote, headers=headers)


def test_client_address_walks_the_forwarded_hops_from_the_right():
    trusted = trusted_networks(["10.0.0.0/8", "2001:db8::/32"])
    assert client_address(request("203.0.113.1", "198.51.100.2"), trusted) == "203.0.113.1"
    assert client_address(request("10.1.2.3", "198.51.100.2"), trusted) == "198.51.100.2"
    assert client_address(request("10.1.2.3", "1.1.1.1, 198.51.100.2, 10.9.9.9"),
                          trusted) == "198.51.100.2"
    assert client_address(request("10.1.2.3", "1.1.1.1", "198.51.100.2:4711"),
                          trusted) == "198.51.100.2"
    assert client_address(request("2001:db8::1", "[2001:db9::5]:443"), trusted) == "2001:db9::5"
    assert client_address(request("10.1.2.3", "not-an-address"), trusted) == "10.1.2.3"
    assert client_address(request("10.1.2.3"), trusted) == "10.1.2.3"
    # Only proxies in the header: the leftmost is where the chain began.
    assert client_address(request("10.1.2.3", "10.5.5.5"), trusted) == "10.5.5.5"


def test_trusted_proxies_must_be_addresses_or_networks(tmp_path):
    assert load_config(None, env={}).core.web.trusted_proxies == []
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"core": {"web": {"trusted_proxies": ["10.0.0.0/8", "::1"]}}}))
    assert load_config(path, env={}).core.web.trusted_proxies == ["10.0.0.0/8", "::1"]
    path.write_text(json.dumps({"core": {"web": {"trusted_proxies": ["10.0.0.1", "proxy.lan"]}}}))
    with pytest.raises(ConfigError, match=r"core\.web\.trusted_proxies.*'proxy\.lan'"):
        load_config(path, env={})
