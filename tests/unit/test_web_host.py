"""The web server reads the running daz only through ``daz.web.host.WebHost``: the App provides
it, and a host with nothing but those members serves every page (anything else it tried to read
would be an AttributeError, a 500 below)."""
import time

from aiohttp.test_utils import TestClient, TestServer

from daz.app import App
from daz.bus import Bus
from daz.commands import CommandRegistry
from daz.config import load_config
from daz.cytube.rooms import Rooms
from daz.metrics import Metrics
from daz.web.host import WebHost
from daz.web.server import WebServer
from tests.fakes.room import RecordingRoom

MEMBERS = sorted(name for name, value in vars(WebHost).items()
                 if isinstance(value, property) or name in ("health", "sample_gauges"))


class OnlyTheHost:
    """Exactly the members of WebHost, nothing else (``__slots__``: no attribute can be added
    or read beyond them)."""

    __slots__ = tuple(name for name in MEMBERS if name not in ("health", "sample_gauges"))

    def __init__(self, tmp_path):
        self.config = load_config(None, env={}, overrides={"channel": "testchan"})
        self.config.core.web.token = "sekrit"
        self.rooms = Rooms([RecordingRoom(channel="testchan")])
        next(iter(self.rooms)).status = lambda: {"joined": True}
        self.commands = CommandRegistry()
        self.metrics = Metrics()
        self.bus = Bus()
        self.db = None
        self.state = "running"
        self.data_dir = tmp_path
        self.started_at = time.time()
        self.embedded = None
        self.holder = None

    async def health(self):
        return True, {"status": "ok", "rooms": {}, "plugins": {}, "problems": [],
                      "database": {"ok": False}}

    async def sample_gauges(self):
        return False


def test_the_host_is_small_and_the_app_provides_it(tmp_path):
    assert MEMBERS == ["bus", "commands", "config", "data_dir", "db", "embedded", "health",
                       "holder", "metrics", "rooms", "sample_gauges", "started_at", "state"]
    app = App(load_config(None, env={}, overrides={"channel": "testchan"}), data_dir=tmp_path,
              web=False)
    assert isinstance(app, WebHost)
    assert isinstance(OnlyTheHost(tmp_path), WebHost)


async def test_every_page_is_served_from_the_host_alone(tmp_path):
    host = OnlyTheHost(tmp_path)
    server = WebServer(host)
    async with TestClient(TestServer(server.build())) as client:
        for path in ("/", "/help", "/c/testchan", "/health", "/health/live", "/metrics",
                     "/login"):
            r = await client.get(path, allow_redirects=False)
            assert r.status == 200, (path, r.status, await r.text())
        assert (await client.get("/health/ready")).status == 503  # no database in this host
    server.live_feed.stop()


async def test_status_is_served_from_the_host_alone(tmp_path):
    host = OnlyTheHost(tmp_path)
    host.rooms = Rooms([])  # a recorded room has no server config to report
    server = WebServer(host)
    async with TestClient(TestServer(server.build())) as client:
        status = await client.get("/status", headers={"Authorization": "Bearer sekrit"})
        assert status.status == 200, await status.text()
        body = await status.json()
        assert body["instance"]["state"] == "running" and body["rooms"] == {}
        assert body["database"] == {"ok": False, "where": "not connected yet"}
    server.live_feed.stop()
