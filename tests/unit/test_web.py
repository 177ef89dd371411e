"""Web pages and health endpoints, against a stand-in app (no database, recorded rooms)."""

import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from daz.cytube.events import parse_event
from daz.plugins.base import Plugin, command
from daz.web.server import WebServer
from tests.fakes.web_host import StubWebHost


class StubApp(StubWebHost):
    """The shared stub host, its /health answer set by the test (no database yet)."""

    def __init__(self, tmp_path, token="sekrit-token", public=True):
        super().__init__(tmp_path, token=token, public=public)
        self.room = next(iter(self.rooms))
        self.room.status = lambda: {"joined": True}
        self.healthy = (False, {"status": "unhealthy", "problems": ["database: not connected yet"]})

    async def health(self):
        return self.healthy


class Helpful(Plugin):
    name = "helpful"

    @command("tell", aliases=("msg",), usage="!tell <user> <message>", min_rank=1,
             description="Leave a <b>message</b>")
    async def tell(self, ctx, user, *message):
        pass

    @command("command", admin_only=True, usage="!command list")
    async def manage(self, ctx, action):
        pass


@pytest.fixture
async def client(tmp_path):
    app = StubApp(tmp_path)
    plugin = Helpful.__new__(Helpful)
    for attr, spec in Helpful.declared_commands():
        app.commands.register("helpful", spec, getattr(plugin, attr))
    server = WebServer(app)
    test_server = TestServer(server.build())
    async with TestClient(test_server) as c:
        c.daz = app
        yield c


async def test_health_is_503_with_the_reason_and_live_is_200(client):
    r = await client.get("/health")
    assert r.status == 503
    assert (await r.json())["problems"] == ["database: not connected yet"]
    client.daz.healthy = (True, {"status": "ok"})
    assert (await client.get("/health")).status == 200
    assert (await client.get("/health/live")).status == 200
    assert (await client.get("/health/ready")).status == 503  # no database


async def test_metrics_exposition(client):
    client.daz.metrics.count_event("chatMsg").inc(3)
    client.daz.room.counts.events_received = 5
    client.daz.room.counts.chat_sent = 2
    body = await (await client.get("/metrics")).text()
    assert 'daz_events_received_total{type="chatMsg"} 3.0' in body
    assert 'daz_room_connected{room="test"} 1' in body  # labelled by room id
    assert 'daz_room_events_received_total{room="test"} 5' in body
    assert 'daz_outbox_sent_total{room="test",kind="chat"} 2' in body
    families = {f.name: f for f in text_string_to_metric_families(body)}  # valid exposition
    assert families["daz_reconnects"].type == "counter"
    assert [(s.name, s.labels, s.value) for s in families["daz_outbox_sent"].samples] == [
        ("daz_outbox_sent_total", {"room": "test", "kind": "chat"}, 2.0),
        ("daz_outbox_sent_total", {"room": "test", "kind": "pm"}, 0.0)]


async def test_a_scrape_reads_each_room_once_and_builds_no_health_report(client):
    """At 1,000 rooms every per-room pass of a scrape is a pause of the event loop: /metrics
    samples the database gauges and reads each room's figures once, not the whole /health."""
    reads = []
    room = client.daz.room
    row = room.metric_row
    room.metric_row = lambda: reads.append(1) or row()

    def no_status():
        raise AssertionError("a scrape built a room's status dict")

    room.status = no_status

    async def no_health_report():
        raise AssertionError("a scrape built the whole /health report")

    client.daz.health = no_health_report
    assert (await client.get("/metrics")).status == 200
    assert len(reads) == 1


async def test_help_lists_commands_from_the_registry_escaped(client):
    html = await (await client.get("/help")).text()
    assert "!tell" in html and "!tell &lt;user&gt; &lt;message&gt;" in html and "msg" in html
    assert "Leave a &lt;b&gt;message&lt;/b&gt;" in html
    assert '<td class="rank">1</td>' in html


async def test_help_shows_the_prefix_read_once_from_the_config(tmp_path, monkeypatch):
    from daz.commands import dispatch

    app = StubApp(tmp_path)
    app.config.core.commands.prefix = "?"
    plugin = Helpful.__new__(Helpful)
    for attr, spec in Helpful.declared_commands():
        app.commands.register("helpful", spec, getattr(plugin, attr))
    calls = []
    settings = dispatch.command_settings
    monkeypatch.setattr(dispatch, "command_settings",
                        lambda config: calls.append(1) or settings(config))
    async with TestClient(TestServer(WebServer(app).build())) as c:
        for _ in range(3):
            html = await (await c.get("/help")).text()
            assert '<td class="name">?tell' in html
    assert len(calls) == 1  # when the pages were built, not once per request


async def test_help_shows_admin_only_commands_as_such(client):
    html = await (await client.get("/help")).text()
    row = html[html.index("!command"):]
    row = row[:row.index("</tr>")]
    assert '<td class="rank">bot admins</td>' in row and "rank\">0<" not in row


async def test_dashboard_escapes_hostile_names_and_has_a_strict_csp(client):
    room = client.daz.room
    room.state.apply(parse_event("userlist", [
        {"name": "<script>alert(1)</script>", "rank": 1, "meta": {"afk": True}},
        {"name": "alice", "rank": 5}], room_id="testchan", channel="testchan"))
    r = await client.get("/c/testchan")
    html = await r.text()
    assert r.status == 200
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "AFK" in html
    assert "script-src 'self'" in r.headers["Content-Security-Policy"]
    assert (await client.get("/c/nochannel")).status == 404


async def test_chat_page_needs_login_and_the_cookie_is_httponly_strict(client):
    r = await client.get("/c/testchan/chat", allow_redirects=False)
    assert r.status == 302 and r.headers["Location"].startswith("/login?next=/c/testchan/chat")
    bad = await client.post("/login", data={"token": "wrong", "next": "/c/testchan/chat"},
                            allow_redirects=False)
    assert bad.status == 403
    good = await client.post("/login", data={"token": "sekrit-token", "next": "/c/testchan/chat"},
                             allow_redirects=False)
    assert good.status == 302 and good.headers["Location"] == "/c/testchan/chat"
    cookie = good.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert (await client.get("/c/testchan/chat", allow_redirects=False)).status == 200


async def test_login_never_redirects_off_site(client):
    r = await client.post("/login", data={"token": "sekrit-token", "next": "//evil.example/x"},
                          allow_redirects=False)
    assert r.headers["Location"] == "/"


async def test_private_aggregates_need_login_too(tmp_path):
    app = StubApp(tmp_path, public=False)
    async with TestClient(TestServer(WebServer(app).build())) as c:
        for path in ("/c/testchan", "/c/testchan/data.json"):
            r = await c.get(path, allow_redirects=False)
            assert r.status == 302 and r.headers["Location"].startswith("/login?next=")
        assert (await c.get("/help")).status == 200  # the command list stays public


def test_generated_token_is_stored_privately_and_reused(tmp_path, capsys):
    from daz.web.auth import load_or_create_token

    first = load_or_create_token("", tmp_path)
    assert first in capsys.readouterr().out  # printed once
    assert (tmp_path / "web-token").stat().st_mode & 0o077 == 0
    assert load_or_create_token("", tmp_path) == first
    assert first not in capsys.readouterr().out  # not printed again


async def test_pms_and_user_history_need_login_too(client):
    for path in ("/c/testchan/pms", "/c/testchan/u/alice"):
        r = await client.get(path, allow_redirects=False)
        assert r.status == 302 and r.headers["Location"] == f"/login?next={path}"
    await client.post("/login", data={"token": "sekrit-token"}, allow_redirects=False)
    for path in ("/c/testchan/pms", "/c/testchan/u/alice"):
        assert (await client.get(path, allow_redirects=False)).status == 200


async def test_user_page_escapes_a_hostile_name_from_the_path(client):
    await client.post("/login", data={"token": "sekrit-token"}, allow_redirects=False)
    html = await (await client.get("/c/testchan/u/%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E")).text()
    assert "<img src=x" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html


async def test_wrong_tokens_are_refused_after_ten_but_never_the_right_one(client):
    for _ in range(10):
        r = await client.post("/login", data={"token": "guess"}, allow_redirects=False)
        assert r.status == 403
    r = await client.post("/login", data={"token": "guess"}, allow_redirects=False)
    assert r.status == 429 and "daz_session" not in r.headers.get("Set-Cookie", "")
    r = await client.post("/login", data={"token": "sekrit-token"}, allow_redirects=False)
    assert r.status == 302 and "daz_session=" in r.headers.get("Set-Cookie", "")


async def test_login_target_cannot_split_headers_or_hide_a_host(client):
    for target, expected in (("/a\r\nSet-Cookie: x=1", "/a%0D%0ASet-Cookie:%20x=1"),
                             ("/\t/evil.example", "/%09/evil.example"),
                             ("/\\evil.example", "/"), ("https://evil.example", "/")):
        r = await client.post("/login", data={"token": "sekrit-token", "next": target},
                              allow_redirects=False)
        assert r.status == 302 and r.headers["Location"] == expected
        assert "x=1" not in r.headers.getall("Set-Cookie", [""])[-1]


def test_filters_show_typed_text_and_keep_names_in_one_path_segment():
    from daz.web import filters

    assert filters.plain("&lt;script&gt;alert(1)&lt;/script&gt;") == "<script>alert(1)</script>"
    assert filters.plain('<a href="http://x.example/" target="_blank">http://x.example/</a>') \
        == "http://x.example/"
    assert filters.urlpart("../a/b?c") == "..%2Fa%2Fb%3Fc"
    assert filters.rank(2.0) == "2" and filters.rank(1.5) == "1.5" and filters.rank(None) == ""
    assert filters.duration(59) == "0:59" and filters.duration(3725) == "1:02:05"
    assert filters.duration(0) == "live"
