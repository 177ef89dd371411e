"""gallery pages on daz's web server and as exported files, with hostile names and URLs in the
database; plus the browser test (headless Chromium loads the page and its images)."""
import asyncio
import re
from html import unescape
from urllib.parse import quote

import pytest
from aiohttp.test_utils import TestClient, TestServer

from daz.plugins.gallery import Gallery
from daz.plugins.gallery.export import export
from daz.plugins.gallery.pages import safe_src, slug
from daz.web.server import WebServer
from tests.fakes.image_server import ImageServer
from tests.fakes.web_host import StubWebHost
from tests.plugin_kit import Kit

HOSTILE_NAME = "<script>alert('name')</script>"
HOSTILE_URLS = [
    "javascript:alert(1)//x.png",
    'https://x.example/q.png"onerror="alert(2)',
    "https://x.example/<script>alert(3)</script>.png",
    "data:image/svg+xml,<svg onload=alert(4)>",
]


async def add(database, user, url, channel="testchan", state="active", reason=None):
    image_id = await database.fetchval("SELECT add_gallery_image($1, $2, $3, NULL, 25)",
                                       user, url, channel)
    if state != "active":
        await database.execute("UPDATE daz_gallery_images SET state = $2, pruned_reason = $3,"
                               " last_check_at = now() WHERE id = $1", image_id, state, reason)
    return image_id


async def seed(database, image_base="https://img.example"):
    await add(database, "alice", f"{image_base}/a1.png")
    await add(database, "bob", f"{image_base}/b1.png")
    await add(database, "alice", f"{image_base}/a2.png")  # alice posted last
    await add(database, "carol", f"{image_base}/dead.png", state="dead", reason="HTTP 404")
    await add(database, "dave", f"{image_base}/pruned.png", state="pruned",
              reason="Gallery limit (25 images) reached")
    await add(database, "locky", f"{image_base}/secret.png")
    await database.execute("INSERT INTO daz_gallery_locks (username, channel, is_locked)"
                           " VALUES ('locky', 'testchan', true)")
    for url in HOSTILE_URLS:
        await add(database, HOSTILE_NAME, url)
    await add(database, HOSTILE_NAME, "javascript:alert(5)", state="dead",
              reason="<img src=x onerror=alert(6)>")


@pytest.fixture
async def site(database, tmp_path):
    k = await Kit.start({"gallery": Gallery}, db=database,
                        sections={"gallery": {"enable_health_check": False}})
    app = StubWebHost(tmp_path, started_at=0.0)
    server = WebServer(app)
    server.extra_routes = k.plugin("gallery").web_routes()
    async with TestClient(TestServer(server.build())) as client:
        client.app_stub = app
        yield client
    await k.stop()


def image_sources(html):
    return re.findall(r'<img src="([^"]*)"', html)


def hrefs(html):
    return re.findall(r'href="([^"]*)"', html)


def assert_inert(html):
    """Nothing hostile became markup: no script, no handler, no non-http(s) link."""
    assert "<script>alert" not in html and "<svg" not in html and "<img src=x" not in html
    assert 'onerror="' not in html and "onload=" not in html.replace("onload=alert(4)&gt;", "")
    for link in image_sources(html) + hrefs(html):
        assert link.startswith(("http://", "https://", "/", "../", "index.html")) or \
            link.endswith((".html", ".css")), link
        assert not link.lower().startswith(("javascript:", "data:"))


async def test_channel_page_shows_everyone_newest_first_and_the_graveyard(site, database):
    await seed(database)
    r = await site.get("/gallery/testchan")
    html = await r.text()
    assert r.status == 200
    csp = r.headers["Content-Security-Policy"]
    assert "script-src 'none'" in csp and "default-src 'none'" in csp
    sources = image_sources(html)
    assert sources[:3] == ["https://img.example/a2.png", "https://img.example/a1.png",
                           "https://img.example/b1.png"] or \
        sources.index("https://img.example/a2.png") < sources.index("https://img.example/b1.png")
    assert "https://img.example/dead.png" not in sources  # dead images are not loaded...
    graveyard = html[html.index('id="graveyard"'):]
    assert "https://img.example/dead.png" in graveyard and "HTTP 404" in graveyard  # ...listed
    assert "pruned.png" not in html  # pruned by the limit: neither shown nor buried
    assert "secret.png" not in html and "locky" not in html  # locked: not shown
    assert '<a href="/gallery/testchan/alice">alice</a>' in html


async def test_hostile_names_and_urls_render_as_text(site, database):
    await seed(database)
    for path in ("/gallery/testchan", "/gallery/testchan/" + quote(HOSTILE_NAME, safe="")):
        r = await site.get(path)
        html = await r.text()
        assert r.status == 200
        assert_inert(html)
        assert "&lt;script&gt;alert(&#39;name&#39;)&lt;/script&gt;" in html
        assert "javascript:alert(1)//x.png" in html  # shown, as text only
        assert "&lt;img src=x onerror=alert(6)&gt;" in html
        # The quote inside a URL stays inside its attribute.
        assert 'src="https://x.example/q.png&#34;onerror=&#34;alert(2)"' in html


async def test_user_page_and_case_insensitive_names(site, database):
    await seed(database)
    html = await (await site.get("/gallery/testchan/ALICE")).text()
    assert image_sources(html) == ["https://img.example/a2.png", "https://img.example/a1.png"]
    assert 'href="/gallery/testchan"' in html
    locked = await (await site.get("/gallery/testchan/locky")).text()
    assert "This gallery is locked" in locked and "secret.png" not in locked
    empty = await (await site.get("/gallery/otherchan")).text()
    assert "No images yet." in empty


async def test_private_pages_need_login(database, tmp_path):
    k = await Kit.start({"gallery": Gallery}, db=database,
                        sections={"gallery": {"enable_health_check": False}})
    server = WebServer(StubWebHost(tmp_path, public=False, started_at=0.0))
    server.extra_routes = k.plugin("gallery").web_routes()
    async with TestClient(TestServer(server.build())) as client:
        r = await client.get("/gallery/testchan", allow_redirects=False)
        assert r.status == 302 and r.headers["Location"] == "/login?next=/gallery/testchan"
    await k.stop()


async def test_nul_and_surrogates_in_gallery_paths_are_404_not_500(site, database, caplog):
    await seed(database)
    for path in ("/gallery/%00", "/gallery/testchan/%00", "/gallery/%00/alice",
                 "/gallery/test%00chan", "/gallery-assets/%00"):
        r = await site.get(path)
        assert r.status == 404, (path, r.status, await r.text())
    for path in ("/gallery/%ED%A0%80", "/gallery/testchan/%ED%A0%80", "/gallery/%FF%FE"):
        r = await site.get(path)
        assert r.status in (200, 404), (path, r.status)  # never decoded into a lone surrogate
    assert (await site.get("/gallery/testchan?x=%00")).status == 400
    assert "Error handling request" not in caplog.text and "Traceback" not in caplog.text
    assert (await site.get("/gallery/testchan")).status == 200  # and the page still works


def test_safe_src_only_lets_http_urls_through():
    assert safe_src("https://x.example/a.png") == "https://x.example/a.png"
    for bad in ["javascript:alert(1)", "data:image/png;base64,xx", "//x.example/a.png",
                "https://x.example/a b.png", "https://x.example/\x00.png", "vbscript:x",
                "https:///a.png", None, 5, "https://x.example/" + "a" * 3000]:
        assert safe_src(bad) is None, bad


def test_slugs_cannot_leave_the_directory():
    assert slug("alice") == "alice"
    for name in ["..", ".", "../../etc/passwd", "a/b", "<script>", "", "x" * 300]:
        s = slug(name)
        assert re.fullmatch(r"[A-Za-z0-9_-]{1,64}", s), s
    assert slug("a/b") != slug("a-b")


async def test_export_writes_safe_static_pages(database, tmp_path):
    from daz.plugins.gallery.store import GalleryStore

    await seed(database)
    await add(database, "eve", "https://img.example/e.png", channel="../../escape")
    out = tmp_path / "site"
    written = await export(GalleryStore(database), out)
    assert all(out in p.parents for p in written)
    assert not (tmp_path / "escape").exists()
    page = (out / "testchan" / "index.html").read_text()
    assert 'http-equiv="Content-Security-Policy"' in page
    assert "script-src 'none'" in unescape(page)
    assert "https://img.example/a2.png" in page and "secret.png" not in page
    assert_inert(page)
    assert (out / "testchan" / "alice.html").exists()
    assert (out / "testchan" / f"{slug(HOSTILE_NAME)}.html").exists()
    assert (out / "assets" / "gallery.css").exists() and (out / "index.html").exists()
    assert slug("../../escape") in (out / "index.html").read_text()


def test_cli_export(migrated_dsn, tmp_path):
    from click.testing import CliRunner

    from daz.plugins.gallery.cli import gallery
    from tests.conftest import run_sync

    async def fill():
        import asyncpg

        conn = await asyncpg.connect(migrated_dsn)
        await conn.execute("SELECT add_gallery_image('alice', 'https://img.example/x.png',"
                           " 'testchan', NULL, 25)")
        await conn.close()

    run_sync(fill)
    result = CliRunner().invoke(gallery, ["export", str(tmp_path / "out"), "--dsn", migrated_dsn,
                                          "--channel", "testchan"])
    assert result.exit_code == 0, result.output
    assert "wrote" in result.output
    assert "https://img.example/x.png" in (tmp_path / "out" / "testchan" / "index.html").read_text()
    bad = CliRunner().invoke(gallery, ["export", str(tmp_path / "x"), "--dsn",
                                       "postgresql://nobody@127.0.0.1:1/none"])
    assert bad.exit_code != 0 and "cannot reach the database" in bad.output


# ------------------------------------------------------------------ in a real browser


@pytest.mark.browser
async def test_the_page_in_chromium_shows_the_images_and_the_graveyard(database, tmp_path,
                                                                      browser):
    async with ImageServer() as images:
        await seed(database, image_base=f"http://127.0.0.1:{images.port}")
        k = await Kit.start({"gallery": Gallery}, db=database,
                            sections={"gallery": {"enable_health_check": False}})
        server = WebServer(StubWebHost(tmp_path, started_at=0.0))
        server.extra_routes = k.plugin("gallery").web_routes()
        await server.start("127.0.0.1", 0)
        try:
            await asyncio.to_thread(browser.get, f"{server.base_url}/gallery/testchan")
            loaded = await asyncio.to_thread(browser.execute_script, """
                return Array.from(document.images).map(
                    i => [i.getAttribute('src'), i.complete && i.naturalWidth > 0]);""")
            for _ in range(50):  # lazy images: wait until they have arrived (bounded)
                if all(ok for src, ok in loaded if src.startswith("http://127.0.0.1")):
                    break
                await asyncio.sleep(0.1)
                loaded = await asyncio.to_thread(browser.execute_script, """
                    return Array.from(document.images).map(
                        i => [i.getAttribute('src'), i.complete && i.naturalWidth > 0]);""")
            local = {src.rsplit("/", 1)[-1]: ok for src, ok in loaded
                     if src.startswith("http://127.0.0.1")}
            assert local == {"a2.png": True, "a1.png": True, "b1.png": True}
            served = {r.path for r in images.requests}
            assert {"/a1.png", "/a2.png", "/b1.png"} <= served and "/dead.png" not in served
            graveyard = await asyncio.to_thread(
                lambda: browser.find_element("id", "graveyard").text)
            assert "dead.png" in graveyard and "HTTP 404" in graveyard
            body = await asyncio.to_thread(lambda: browser.find_element("tag name", "body").text)
            assert HOSTILE_NAME in body  # shown as the text it is
            scripts = await asyncio.to_thread(
                browser.execute_script, "return document.scripts.length")
            assert scripts == 0
            await asyncio.to_thread(browser.save_screenshot, str(tmp_path / "gallery.png"))
            assert (tmp_path / "gallery.png").stat().st_size > 1000
        finally:
            await server.stop()
            await k.stop()


async def many(database, user, count, channel="testchan", minutes_ago=0):
    await database.execute(
        "INSERT INTO daz_gallery_images (username, url, channel, posted_at)"
        " SELECT $1::text, 'https://img.example/' || $1::text || '/' || g || '.png', $3,"
        "        now() - (g + $4) * interval '1 minute' FROM generate_series(1, $2) g",
        user, count, channel, minutes_ago)


async def test_channel_page_shows_at_most_a_page_of_images_with_links_to_the_rest(site, database):
    await many(database, "alice", 150)
    await many(database, "bob", 100, minutes_ago=1000)
    await add(database, "carol", "https://img.example/dead.png", state="dead", reason="HTTP 404")
    first = await (await site.get("/gallery/testchan")).text()
    sources = image_sources(first)
    assert len(sources) == 100 and sources[0] == "https://img.example/alice/1.png"
    assert "250 images" in first and "page 1 of 3" in first
    links = hrefs(first)
    assert "/gallery/testchan?page=2" in links and "/gallery/testchan?page=3" in links
    assert 'id="graveyard"' in first  # the graveyard ends the first page only
    last = await (await site.get("/gallery/testchan?page=3")).text()
    assert len(image_sources(last)) == 50 and "showing 201–250" in last
    assert 'id="graveyard"' not in last and "/gallery/testchan" in hrefs(last)
    every = set()
    for number in (1, 2, 3):
        page = await site.get(f"/gallery/testchan?page={number}")
        every |= set(image_sources(await page.text()))
    assert len(every) == 250  # no image is on two pages, none is missing
    missing = await site.get("/gallery/testchan?page=4")
    assert missing.status == 404 and "3 page(s)" in await missing.text()
    for bad in ("0", "-1", "abc", "1e3"):
        r = await site.get(f"/gallery/testchan?page={bad}")
        assert r.status == 400 and "whole number" in await r.text()


async def test_a_persons_page_is_paged_too(site, database):
    await many(database, "Alice", 230)
    page = await (await site.get("/gallery/testchan/alice")).text()
    assert len(image_sources(page)) == 100 and "page 1 of 3" in page
    assert "/gallery/testchan/alice?page=3" in hrefs(page)
    third = await (await site.get("/gallery/testchan/alice?page=3")).text()
    assert len(image_sources(third)) == 30


async def test_an_image_count_is_reused_for_half_a_minute_then_counted_again():
    from daz.plugins.gallery.pages import ImageCounts

    now = [100.0]
    calls = []

    async def count():
        calls.append(now[0])
        return len(calls) * 10

    counts = ImageCounts(lambda: now[0])
    assert await counts.get("c", None, count) == 10
    now[0] += 29
    assert await counts.get("c", None, count) == 10  # reused
    assert await counts.get("c", "Alice", count) == 20  # each gallery its own
    assert await counts.get("c", "alice", count) == 20  # names ignore case
    now[0] += 2
    assert await counts.get("c", None, count) == 30  # 31 s old: counted again
    assert len(calls) == 3
