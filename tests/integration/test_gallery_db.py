"""gallery on a real PostgreSQL through the Kit: collecting, limits, rate limit, re-posts,
locks, commands and the health state machine against a local image server."""
import pytest

from daz.clock import FakeClock
from daz.plugins.eventfilter import EventFilter
from daz.plugins.gallery import Gallery
from tests.fakes.image_server import ImageServer
from tests.plugin_kit import Kit


async def public_resolver(host, port):
    if host.startswith("inside."):
        return ["10.9.8.7"]
    if host.startswith("nxdomain."):
        raise OSError("Name or service not known")
    return ["93.184.216.34"]


async def start(database, images=None, **section):
    section.setdefault("enable_health_check", False)
    if images is not None:
        section.setdefault("unsafe_allow_hosts", [f"127.0.0.1:{images.port}"])
    clock = FakeClock()
    k = await Kit.start({"eventfilter": EventFilter, "gallery": Gallery}, db=database,
                        sections={"gallery": section}, admins=["boss"], clock=clock)
    k.clock = clock
    k.user("boss", 2)
    k.gallery = k.plugin("gallery")
    k.gallery.fetcher.resolver = public_resolver
    return k


async def post(k, user, text):
    await k.chat(user, text)
    k.clock.advance(31)  # past the per-user rate limit


async def rows(database, user=None):
    return await database.fetch(
        "SELECT id, username, url, channel, state, is_active, pruned_reason, failure_count,"
        " server_error_count, next_check_at, last_check_at FROM daz_gallery_images"
        " WHERE $1::text IS NULL OR username = $1 ORDER BY id", user)


async def states(database, user=None):
    return {r["url"].rsplit("/", 1)[-1]: r["state"] for r in await rows(database, user)}


async def make_due(database):
    """Pretend the backoff has passed (the tests do not wait hours)."""
    await database.execute("UPDATE daz_gallery_images SET next_check_at = now() - interval '1s',"
                           " last_check_at = now() - interval '2 hours'")


# ------------------------------------------------------------------ collecting


async def test_the_first_image_of_a_line_is_stored(database):
    k = await start(database)
    await post(k, "alice", "look https://pics.example/a.png and https://pics.example/b.png")
    [row] = await rows(database)
    assert (row["username"], row["url"], row["channel"]) == \
        ("alice", "https://pics.example/a.png", "testchan")
    assert row["state"] == "active" and row["is_active"] is True
    await k.stop()


async def test_server_html_links_are_read_from_the_href(database):
    k = await start(database)
    await post(k, "alice", 'hi <a href="https://i.imgur.com/AbC?x=1&amp;y=2" target="_blank">'
                           'https://i.imgur.com/AbC?x=1&amp;y=2</a>')
    assert [r["url"] for r in await rows(database)] == ["https://i.imgur.com/AbC?x=1&y=2"]
    await k.stop()


async def test_non_images_unsafe_hosts_and_hostile_lines_are_not_collected(database):
    k = await start(database)
    for text in ["https://notimgur.com.example/abc", "https://example.com/page.html",
                 "http://10.0.0.1/a.png", "http://169.254.169.254/a.png", "http://[::1]/a.png",
                 "https://inside.example/a.png", "https://nxdomain.example/a.png",
                 "\x00" * 1000, "<script>alert(1)</script> https://x.example/a.png\x00.png",
                 "x" * 100_000]:
        await post(k, "mallory", text)
    assert await rows(database) == []
    await post(k, "mallory", "fine https://x.example/ok.png")  # and it still works
    assert list(await states(database)) == ["ok.png"]
    await k.stop()


async def test_a_lone_surrogate_in_a_posted_url_is_not_collected_and_breaks_nothing(database):
    k = await start(database)
    errors_before = sum(k.bus.stats.errors.values())
    for text in ("https://x.example/a\ud800b.png", "see https://i.imgur.com/\udfff",
                 "https://x.example/ok.png?name=\udc80"):
        await post(k, "mallory", text)
    assert await rows(database) == []
    assert sum(k.bus.stats.errors.values()) == errors_before  # the handler never raised
    await post(k, "mallory", "fine https://x.example/ok.png")
    assert list(await states(database)) == ["ok.png"]
    await k.stop()


async def test_replayed_and_own_lines_are_ignored(database):
    k = await start(database)
    await k.chat("alice", "https://x.example/old.png", replayed=True)
    await k.chat("dazbot", "https://x.example/mine.png", own=True)
    assert await rows(database) == []
    await k.stop()


async def test_one_image_per_user_per_rate_window(database):
    k = await start(database, rate_limit_seconds=30)
    await k.chat("alice", "https://x.example/1.png")
    await k.chat("alice", "https://x.example/2.png")  # too soon: ignored
    await k.chat("bob", "https://x.example/3.png")  # someone else is not held up
    k.clock.advance(30)
    await k.chat("alice", "https://x.example/4.png")
    assert await states(database) == {"1.png": "active", "3.png": "active", "4.png": "active"}
    await k.stop()


async def test_the_limit_prunes_the_oldest_and_names_the_real_limit(database):
    k = await start(database, max_images_per_user=3)
    for n in range(1, 5):
        await post(k, "alice", f"https://x.example/{n}.png")
    assert await states(database) == {"1.png": "pruned", "2.png": "active", "3.png": "active",
                                      "4.png": "active"}
    [first] = [r for r in await rows(database) if r["url"].endswith("/1.png")]
    assert first["pruned_reason"] == "Gallery limit (3 images) reached"
    assert first["is_active"] is False
    await k.stop()


async def test_reposting_a_pruned_link_brings_it_back(database):
    k = await start(database, max_images_per_user=3)
    for n in range(1, 5):
        await post(k, "alice", f"https://x.example/{n}.png")
    await post(k, "alice", "again https://x.example/1.png")
    assert await states(database) == {"1.png": "active", "2.png": "pruned", "3.png": "active",
                                      "4.png": "active"}
    assert len(await rows(database)) == 4  # the same row came back, no duplicate
    # Under the limit (one died), a re-post takes the free place and prunes nothing.
    await database.execute("UPDATE daz_gallery_images SET state = 'dead', pruned_reason = 'x'"
                           " WHERE url LIKE '%/3.png'")
    await post(k, "alice", "https://x.example/2.png")
    assert await states(database) == {"1.png": "active", "2.png": "active", "3.png": "dead",
                                      "4.png": "active"}
    await k.stop()


async def test_lock_and_unlock_per_channel(database):
    k = await start(database)
    await k.chat("alice", "!gallery_lock")
    assert k.room.said[-1] == "Your gallery in testchan is now locked: nothing is collected " \
                              "or shown."
    await post(k, "alice", "https://x.example/hidden.png")
    assert await rows(database) == []
    k.clock.advance(10)
    await k.chat("alice", "!gallery")
    assert k.room.said[-1].endswith("[locked: not collecting or showing]")
    # A lock in a second channel is its own row (Go's lock table allowed only one per user).
    await k.gallery.store.set_locked("alice", "otherchan", True)
    assert await database.fetchval("SELECT count(*) FROM daz_gallery_locks"
                                   " WHERE username = 'alice' AND is_locked") == 2
    k.clock.advance(10)
    await k.chat("alice", "!gallery_unlock")
    assert k.room.said[-1] == "Your gallery in testchan is now unlocked."
    await post(k, "alice", "https://x.example/shown.png")
    assert await states(database) == {"shown.png": "active"}
    assert await k.gallery.store.is_locked("alice", "otherchan")
    await k.stop()


async def test_gallery_command_links_to_the_users_page(database):
    k = await start(database, max_images_per_user=25)
    k.manager.config.core.web.base_url = "https://daz.example/"
    await post(k, "alice", "https://x.example/1.png")
    await post(k, "alice", "https://x.example/2.png")
    await k.chat("alice", "!gallery")
    assert k.room.said[-1] == ("alice's gallery: https://daz.example/gallery/testchan/alice "
                               "(2 images here, 2 of 25 in all)")
    await k.stop()


# ------------------------------------------------------------------ health


async def test_health_states_ok_failures_death_and_recovery(database):
    async with ImageServer() as images:
        k = await start(database, images)
        await post(k, "alice", images.url("/good.png"))
        await post(k, "alice", images.url("/gone.png"))
        await post(k, "alice", images.url("/album.png"))
        images.status("/gone.png", 404)
        images.content_type("/album.png", "text/html")
        health = k.gallery.health

        report = await health.run()
        assert (report.checked, report.healthy, report.failed) == (3, 1, 2)
        by_url = {r["url"].rsplit("/", 1)[-1]: r for r in await rows(database)}
        assert by_url["good.png"]["last_check_at"] is not None
        assert by_url["gone.png"]["failure_count"] == 1 and by_url["gone.png"]["state"] == "active"
        # Not due again for 3 hours: a second run now checks nothing.
        assert (await health.run()).checked == 0

        for expected_failures in (2, 3):
            await make_due(database)
            report = await health.run()
            gone = next(r for r in await rows(database) if r["url"].endswith("/gone.png"))
            assert gone["failure_count"] == expected_failures
        assert report.died == 2
        by_url = {r["url"].rsplit("/", 1)[-1]: r for r in await rows(database)}
        assert by_url["gone.png"]["state"] == "dead" and by_url["gone.png"]["is_active"] is False
        assert by_url["gone.png"]["pruned_reason"] == "HTTP 404"
        assert by_url["album.png"]["pruned_reason"] == "not an image (Content-Type text/html)"
        assert by_url["good.png"]["state"] == "active"

        images.routes.pop("/gone.png")  # it is back
        await make_due(database)
        report = await health.run()
        assert report.recovered == 1
        assert (await states(database))["gone.png"] == "active"
        log = await database.fetchval("SELECT count(*) FROM daz_gallery_health_log")
        assert log >= 8
        codes = await database.fetch(
            "SELECT h.status_code FROM daz_gallery_health_log h JOIN daz_gallery_images i"
            " ON i.id = h.image_id WHERE i.url LIKE '%/gone.png' ORDER BY h.id")
        assert [r["status_code"] for r in codes] == [404, 404, 404, 200]  # the restore too
        await k.stop()


async def test_server_errors_back_off_without_killing(database):
    async with ImageServer() as images:
        k = await start(database, images)
        await post(k, "alice", images.url("/flaky.png"))
        images.status("/flaky.png", 503)
        for n in range(1, 5):
            report = await k.gallery.health.run()
            assert report.server_errors == 1
            [row] = await rows(database)
            assert row["server_error_count"] == n and row["failure_count"] == 0
            assert row["state"] == "active"
            wait = await database.fetchval("SELECT extract(epoch FROM next_check_at - now())"
                                           " FROM daz_gallery_images")
            assert 15 * 60 * 2 ** (n - 1) - 60 < wait <= 15 * 60 * 2 ** (n - 1)
            assert (await k.gallery.health.run()).checked == 0  # not hammered while backing off
            await make_due(database)
        images.routes.pop("/flaky.png")
        await k.gallery.health.run()
        [row] = await rows(database)
        assert row["server_error_count"] == 0 and row["state"] == "active"
        await k.stop()


@pytest.mark.parametrize("status", [401, 403, 429])
async def test_hosts_that_keep_bots_out_never_kill_an_image(database, status):
    async with ImageServer() as images:
        k = await start(database, images)
        await post(k, "alice", images.url("/hotlinked.png"))
        images.status("/hotlinked.png", status)  # HEAD and the ranged GET alike
        for n in range(1, 6):
            report = await k.gallery.health.run()
            assert (report.checked, report.blocked, report.failed, report.died) == (1, 1, 0, 0)
            [row] = await rows(database)
            assert (row["state"], row["failure_count"], row["server_error_count"]) == \
                ("active", 0, n)
            assert (await k.gallery.health.run()).checked == 0  # backing off, not hammered
            await make_due(database)
        log = await database.fetch("SELECT status_code, error_message FROM daz_gallery_health_log"
                                   " ORDER BY id")
        assert [tuple(r) for r in log] == \
            [(status, f"blocked by the host (HTTP {status})")] * 5
        # A real "gone" after the refused HEAD still counts.
        images.by_method("/hotlinked.png", 403, 404)
        report = await k.gallery.health.run()
        assert report.failed == 1
        [row] = await rows(database)
        assert (row["state"], row["failure_count"]) == ("active", 1)
        await k.stop()


def closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_the_health_log_has_the_real_status_and_the_time_taken(database):
    async with ImageServer() as images:
        nobody = closed_port()
        k = await start(database, images, unsafe_allow_hosts=[f"127.0.0.1:{images.port}",
                                                               f"127.0.0.1:{nobody}"])
        await post(k, "alice", images.url("/good.png"))
        await post(k, "alice", images.url("/nohead.png"))
        await post(k, "alice", images.url("/gone.png"))
        await post(k, "alice", images.url("/flaky.png"))
        await post(k, "alice", f"http://127.0.0.1:{nobody}/refused.png")
        # A row from before the address rules (a Go database): refused without a request.
        await k.gallery.store.add_image("alice", "http://10.0.0.1/inside.png", "testchan", 25)
        images.no_head("/nohead.png")
        images.status("/gone.png", 404)
        images.status("/flaky.png", 503)
        assert (await k.gallery.health.run()).checked == 6
        log = {r["url"].rsplit("/", 1)[-1]: r for r in await database.fetch(
            "SELECT i.url, h.status_code, h.response_time_ms FROM daz_gallery_health_log h"
            " JOIN daz_gallery_images i ON i.id = h.image_id")}
        assert {name: r["status_code"] for name, r in log.items()} == {
            "good.png": 200, "nohead.png": 206, "gone.png": 404, "flaky.png": 503,
            "refused.png": None, "inside.png": None}
        for name in ("good.png", "nohead.png", "gone.png", "flaky.png", "refused.png"):
            assert log[name]["response_time_ms"] is not None and \
                log[name]["response_time_ms"] >= 0, name
        assert log["inside.png"]["response_time_ms"] is None  # no request was sent
        last = dict(await database.fetch("SELECT url, last_status_code FROM daz_gallery_images"))
        assert last[images.url("/gone.png")] == 404 and last[images.url("/good.png")] == 200
        await k.stop()


async def test_head_refused_uses_a_ranged_get(database):
    async with ImageServer() as images:
        k = await start(database, images)
        await post(k, "alice", images.url("/nohead.png"))
        images.no_head("/nohead.png")
        assert (await k.gallery.health.run()).healthy == 1
        assert [(r.method, r.headers.get("Range")) for r in images.requests] == \
            [("HEAD", None), ("GET", "bytes=0-1023")]
        await k.stop()


async def test_recovery_never_goes_past_the_limit(database):
    async with ImageServer() as images:
        k = await start(database, images, max_images_per_user=2)
        await post(k, "alice", images.url("/old.png"))
        images.status("/old.png", 404)
        for _ in range(3):
            await k.gallery.health.run()
            await make_due(database)
        assert (await states(database))["old.png"] == "dead"
        await post(k, "alice", images.url("/new1.png"))
        await post(k, "alice", images.url("/new2.png"))
        images.routes.pop("/old.png")  # answers again, but alice is full
        await make_due(database)
        report = await k.gallery.health.run()
        assert report.still_dead == 1 and report.recovered == 0
        assert await states(database) == {"old.png": "dead", "new1.png": "active",
                                          "new2.png": "active"}
        [old] = [r for r in await rows(database) if r["url"].endswith("/old.png")]
        assert old["next_check_at"] is not None  # looked at again later
        await k.stop()


async def test_a_locked_gallery_is_not_checked(database):
    async with ImageServer() as images:
        k = await start(database, images)
        await post(k, "alice", images.url("/a.png"))
        await k.gallery.store.set_locked("alice", "testchan", True)
        assert (await k.gallery.health.run()).checked == 0
        assert images.requests == []
        await k.stop()


async def test_gallery_check_is_for_admins_and_reports_counts(database):
    async with ImageServer() as images:
        k = await start(database, images)
        await post(k, "alice", images.url("/a.png"))
        await post(k, "alice", images.url("/b.png"))
        images.status("/b.png", 404)
        await k.chat("alice", "!gallery_check")
        assert images.requests == [] and not any("Gallery check" in s for s in k.room.said)
        k.user("boss", 1)  # admins count logged in with an account
        await k.chat("boss", "!gallery_check")
        assert k.room.said[-1] == ("Gallery check: 2 checked: 1 ok, 1 failed, 0 server errors, "
                                   "0 blocked; 0 died, 0 recovered.")
        # A manual run checks again at once (the hourly schedule is for the timer).
        k.clock.advance(10)
        await k.chat("boss", "!gallery_check")
        assert k.room.said[-1].startswith("Gallery check: 1 checked")  # b.png is backing off
        await k.stop()


async def test_the_health_loop_runs_on_its_interval(database):
    async with ImageServer() as images:
        k = await start(database, images, enable_health_check=True,
                        health_check_interval="10s")
        job = k.manager.jobs("gallery")["health_check"]  # the manager runs it (@every)
        assert job is not None and not job.done()
        await k.stop()
        assert job.done()


@pytest.mark.parametrize("interval", ["0", "3s", "soon"])
async def test_a_bad_interval_stops_start_up_with_a_clear_error(database, interval):
    from daz.config import ConfigError

    with pytest.raises(ConfigError, match=r"plugins\.gallery\.health_check_interval"):
        await start(database, health_check_interval=interval)


async def test_an_image_posted_while_the_database_is_down_goes_to_the_retry_queue(database):
    from daz.db.pool import Database

    k = await start(database)
    queued = []

    async def enqueue(request):
        queued.append(request)
        return 1

    k.bus.respond("retry.enqueue", enqueue, owner="test")
    k.gallery.store.db = Database("postgresql://nobody@127.0.0.1:1/none")  # never started
    await post(k, "alice", "https://x.example/while-down.png")
    assert [(q["plugin"], q["operation"], q["payload"]) for q in queued] == [
        ("gallery", "add_image", {"username": "alice", "url": "https://x.example/while-down.png",
                                  "channel": "testchan"})]
    k.gallery.store.db = database  # back: the retry queue runs the operation again
    await k.gallery.retry_operation("add_image", queued[0]["payload"])
    await k.gallery.retry_operation("add_image", queued[0]["payload"])  # idempotent
    assert await states(database) == {"while-down.png": "active"}
    await k.stop()
