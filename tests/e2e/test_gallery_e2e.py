"""The whole bot with the gallery: a link posted in the fake CyTube room is collected, checked
by !gallery_check against a local image server, and shown on daz's own web server."""
import aiohttp
import pytest

from tests.e2e.harness import running_bot, wait_until
from tests.fakes.cytube import FakeCytubeServer
from tests.fakes.image_server import ImageServer


@pytest.fixture
async def server():
    fake = FakeCytubeServer()
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()


async def test_a_posted_image_is_collected_checked_and_shown(server, migrated_dsn, tmp_path):
    async with ImageServer() as images:
        section = {"enable_health_check": False,
                   "unsafe_allow_hosts": [f"127.0.0.1:{images.port}"]}
        async with running_bot(server, migrated_dsn, tmp_path, web=True, admin_users=["boss"],
                               only=["eventfilter", "gallery"],
                               plugins={"gallery": section}) as bot:
            alice = await server.user("alice")
            server.add_account("boss", "bosspw1")  # admins are registered and logged in
            boss = await server.user("boss")
            await alice.chat(f"my cat {images.url('/cat.png')} and {images.url('/dog.png')}")
            await wait_until(lambda: bot.db.fetchval(
                "SELECT url FROM daz_gallery_images WHERE username = 'alice'"), 10, "the image")
            await boss.chat("!gallery_check")
            await wait_until(lambda: any(text.startswith("Gallery check: 1 checked: 1 ok")
                                         for _, text in boss.chats()), 10, "the report")
            assert [r.path for r in images.requests] == ["/cat.png"]
            page_url = f"{bot.web.base_url}/gallery/testchan"

            async def page():
                async with aiohttp.ClientSession() as http:
                    async with http.get(page_url) as response:
                        return await response.text() if response.status == 200 else ""

            html = await wait_until(page, 10, "the gallery page")
            assert f'src="{images.url("/cat.png")}"' in html and "dog.png" not in html
