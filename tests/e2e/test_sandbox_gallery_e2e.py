"""``daz sandbox`` fills its gallery with no internet (issue 10 item 8): its scripted people post
pictures from the sandbox's own loopback image host, and only ``daz sandbox`` tells the gallery
to trust that one origin. The SSRF guard stays closed for everything else."""
from __future__ import annotations

import asyncio

import asyncpg

from daz.plugins.gallery.settings import GalleryConfig
from daz.sandbox.images import SandboxImages, png
from daz.sandbox.runner import run_sandbox_bot
from tests.e2e.harness import running_bot, wait_until
from tests.e2e.support import CHANNEL, plugins


async def test_daz_sandbox_collects_its_own_pictures(migrated_dsn, tmp_path):
    stop = asyncio.Event()
    sandbox = asyncio.create_task(run_sandbox_bot(
        port=0, channel="sandbox", dsn=migrated_dsn, data_dir=tmp_path, web_port=0,
        speed=50, stop=stop))
    conn = await asyncpg.connect(migrated_dsn)
    try:
        async def collected():
            assert not sandbox.done(), sandbox.exception()
            return await conn.fetch("SELECT username, url FROM daz_gallery_images"
                                    " WHERE channel = 'sandbox'")
        rows = await wait_until(collected, 60, "a picture in the sandbox gallery")
    finally:
        stop.set()
        await asyncio.wait_for(sandbox, 30)
        await conn.close()
    assert rows[0]["username"] == "alice"
    assert rows[0]["url"].startswith("http://127.0.0.1:") and "/img/daz" in rows[0]["url"]


async def test_the_trust_is_off_by_default_and_only_for_the_named_origin(fake_server,
                                                                         migrated_dsn, tmp_path):
    assert GalleryConfig().unsafe_allow_hosts == []
    server = fake_server
    async with SandboxImages() as images, SandboxImages() as other:
        config = plugins(gallery={"unsafe_allow_hosts": [images.origin],
                                  "rate_limit_seconds": 0})
        async with running_bot(server, migrated_dsn, tmp_path, plugins=config,
                               only=["sql", "gallery"]) as bot:
            alice = await server.user("alice")
            for url in (other.url("elsewhere"),  # loopback, another port: refused
                        f"http://localhost:{images.port}/img/byname.png",  # another name
                        images.url("trusted")):
                await alice.chat(f"look {url}")
            rows = await wait_until(lambda: bot.db.fetch(
                "SELECT url FROM daz_gallery_images WHERE channel = $1", CHANNEL), 10,
                "the trusted picture collected")
            await bot.settle()
            rows = await bot.db.fetch("SELECT url FROM daz_gallery_images")
            await alice.leave()
    assert [r["url"] for r in rows] == [images.url("trusted")]
    assert other.served == 0


def test_sandbox_pictures_are_real_pngs_that_differ_by_name():
    first, second = png("daz1"), png("daz2")
    assert first.startswith(b"\x89PNG\r\n\x1a\n") and first.endswith(b"IEND\xaeB`\x82")
    assert first != second and png("daz1") == first
