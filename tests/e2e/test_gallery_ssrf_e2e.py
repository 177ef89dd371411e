"""SSRF through the whole bot: image links aimed at internal addresses, posted in the fake CyTube
room, then an admin's !gallery_check. ``protected`` stands for an internal service on loopback
(and on ::1 where the host has IPv6); it must never receive a request, neither from collecting
nor from checking, nor through a redirect from an allowed image host.

The protected port is in ``allowed_ports`` on purpose, so that only the address rules stand
between the bot and the service.
"""
from tests.e2e.harness import running_bot, wait_until
from tests.fakes.image_server import ImageServer, ipv6_loopback_available


async def test_internal_image_links_are_never_fetched(fake_server, migrated_dsn, tmp_path):
    async with ImageServer() as images, ImageServer() as protected:
        v6 = ipv6_loopback_available() and await protected.also_listen("::1")
        port = protected.port
        internal = [f"http://127.0.0.1:{port}/secret.png", "http://10.0.0.1/a.png",
                    "http://169.254.169.254/latest/meta-data/iam.png",
                    f"http://[::1]:{port}/secret.png"]
        # A host the bot may reach (standing for a public one) whose image redirects inside.
        images.redirect("/hop.png", f"http://127.0.0.1:{port}/via-redirect.png")
        section = {"enable_health_check": False, "rate_limit_seconds": 0,
                   "allowed_ports": [80, 443, port],
                   "unsafe_allow_hosts": [f"127.0.0.1:{images.port}"]}
        async with running_bot(fake_server, migrated_dsn, tmp_path, admin_users=["boss"],
                               only=["eventfilter", "gallery"],
                               plugins={"gallery": section}) as bot:
            mallory = await fake_server.user("mallory")
            fake_server.add_account("boss", "bosspw1")  # admins are registered, logged in
            boss = await fake_server.user("boss")
            for url in internal:
                await mallory.chat(f"look {url}")
            await mallory.chat(f"and {images.url('/hop.png')}")
            await wait_until(lambda: bot.db.fetchval(
                "SELECT id FROM daz_gallery_images WHERE url = $1", images.url("/hop.png")),
                10, "the redirecting image to be collected")
            await bot.settle()
            # A row stored before these rules (e.g. by the Go bot), pointing inside.
            await bot.db.execute("SELECT add_gallery_image('olduser', $1, 'testchan', NULL, 25)",
                                 f"http://127.0.0.1:{port}/legacy.png")

            await boss.chat("!gallery_check")
            report = await wait_until(
                lambda: next((text for _, text in boss.chats()
                              if text.startswith("Gallery check: ")), None),
                15, "the !gallery_check report")

            assert report.startswith("Gallery check: 2 checked: 0 ok, 2 failed"), report
            assert protected.requests == [], (protected.requests, v6)
            assert [(r.method, r.path) for r in images.requests] == [("HEAD", "/hop.png")]
            rows = await bot.db.fetch("SELECT url, state, failure_count, pruned_reason"
                                      " FROM daz_gallery_images ORDER BY id")
            # Nothing posted at an internal address was collected at all, so no active row
            # points at the protected listener but the one written by hand, whose check failed.
            assert [r["url"] for r in rows if r["url"] in internal] == []
            legacy_url = f"http://127.0.0.1:{port}/legacy.png"
            assert [r["url"] for r in rows if f":{port}/" in r["url"] and r["state"] == "active"
                    and r["url"] != legacy_url] == []
            # The hand-written row names an internal address: dead at once, not after three
            # checks, so the gallery page stops showing it to viewers' browsers.
            assert [(r["state"], r["failure_count"]) for r in rows
                    if r["url"] == legacy_url] == [("dead", 3)]
            # The redirect hop and the old row were refused as unsafe.
            log = await bot.db.fetch(
                "SELECT i.url, h.status_code, h.error_message FROM daz_gallery_health_log h"
                " JOIN daz_gallery_images i ON i.id = h.image_id ORDER BY i.url")
            by_url = {r["url"]: r for r in log}
            hop = by_url[images.url("/hop.png")]
            assert hop["status_code"] == 302 and "unsafe URL" in hop["error_message"]
            legacy = by_url[legacy_url]
            assert legacy["status_code"] is None and "unsafe URL" in legacy["error_message"]
