"""gallery fetcher: nothing internal is ever requested; the positive path through a local
server reached only via the unsafe allow option.

``protected`` stands for an internal service: every test that points the fetcher at something
internal asserts it received no request at all.
"""
import asyncio

import pytest

from daz.plugins.gallery.fetch import FetchPolicy, Refused, SafeFetcher
from tests.fakes.image_server import ImageServer, ipv6_loopback_available


@pytest.fixture
async def servers():
    async with ImageServer() as images, ImageServer() as protected:
        protected.v6 = ipv6_loopback_available() and await protected.also_listen("::1")
        yield images, protected


def fetcher_for(images, resolver=None, extra_ports=(), **policy):
    """A fetcher that may reach exactly the ``images`` server (127.0.0.1:<its port>)."""
    allow = (f"127.0.0.1:{images.port}",) + tuple(policy.pop("allow", ()))
    return SafeFetcher(FetchPolicy(unsafe_allow_hosts=allow,
                                   allowed_ports=(80, 443) + tuple(extra_ports), timeout=5,
                                   **policy), resolver=resolver)


def table_resolver(table, calls=None):
    async def resolve(host, port):
        if calls is not None:
            calls.append(host)
        if host not in table:
            raise OSError(f"NXDOMAIN {host}")
        answer = table[host]
        return answer() if callable(answer) else answer
    return resolve


# ------------------------------------------------------------------ refusals


@pytest.mark.parametrize("target", ["127.0.0.1", "10.0.0.1", "169.254.169.254", "[::1]",
                                    "[::ffff:127.0.0.1]", "0.0.0.0", "100.64.0.1"])
async def test_internal_literals_are_never_requested(servers, target):
    images, protected = servers
    # Even with the protected port allowed, the address itself is refused.
    fetcher = fetcher_for(images, extra_ports=(protected.port,))
    result = await fetcher.check_image(f"http://{target}:{protected.port}/secret.png")
    assert result.outcome == "failed" and "unsafe URL" in result.reason
    assert fetcher.sent == [] and protected.requests == []


async def test_a_name_resolving_to_a_private_address_is_refused(servers):
    images, protected = servers
    calls = []
    resolver = table_resolver({"pics.evil.example": ["127.0.0.1"],
                               "mixed.evil.example": ["93.184.216.34", "10.1.2.3"],
                               "v6.evil.example": ["::1"]}, calls)
    fetcher = fetcher_for(images, resolver, extra_ports=(protected.port,))
    for host, why in [("pics.evil.example", "loopback"), ("mixed.evil.example", "private"),
                      ("v6.evil.example", "loopback")]:
        result = await fetcher.check_image(f"http://{host}:{protected.port}/x.png")
        assert result.outcome == "failed" and why in result.reason, result
    assert calls  # the names were really resolved and judged
    assert fetcher.sent == [] and protected.requests == []


async def test_localhost_by_name_is_refused_with_the_system_resolver(servers):
    images, protected = servers
    fetcher = fetcher_for(images, extra_ports=(protected.port,))
    result = await fetcher.check_image(f"http://localhost:{protected.port}/x.png")
    assert result.outcome == "failed" and "unsafe URL" in result.reason
    assert protected.requests == []


async def test_dns_failure_and_timeout_fail_closed(servers):
    images, _ = servers

    async def slow(host, port):
        await asyncio.sleep(10)

    fetcher = fetcher_for(images, table_resolver({}))
    result = await fetcher.check_image("https://nowhere.example/a.png")
    assert result.outcome == "failed" and "DNS lookup of nowhere.example failed" in result.reason
    fetcher = SafeFetcher(FetchPolicy(dns_timeout=0.05), resolver=slow)
    with pytest.raises(Refused, match="timed out"):
        await fetcher.vet("https://slow.example/a.png")
    assert fetcher.sent == []


@pytest.mark.parametrize("location", [
    "http://127.0.0.1:{p}/secret.png",           # loopback, another port (not allowed)
    "http://localhost:{p}/secret.png",
    "http://[::1]:{p}/secret.png",
    "http://169.254.169.254/latest/meta-data/",
    "http://10.0.0.1/x.png",
    "http://rebind.example:{p}/secret.png",      # a name that resolves to loopback
    "ftp://127.0.0.1/x.png",
    "http://user:pw@example.com/x.png",
])
async def test_a_public_hop_redirecting_inside_is_stopped(servers, location):
    images, protected = servers
    images.redirect("/hop.png", location.format(p=protected.port))
    fetcher = fetcher_for(images, table_resolver({"rebind.example": ["127.0.0.1"],
                                                  "example.com": ["93.184.216.34"]}))
    result = await fetcher.check_image(images.url("/hop.png"))
    assert result.outcome == "failed" and "unsafe URL" in result.reason, result
    assert [r.path for r in images.requests] == ["/hop.png"]  # the first hop did happen
    assert protected.requests == []


async def test_even_an_allowed_port_does_not_open_internal_redirect_targets(servers):
    images, protected = servers
    images.redirect("/hop.png", protected.url("/secret.png"))
    fetcher = fetcher_for(images, extra_ports=(protected.port,))
    result = await fetcher.check_image(images.url("/hop.png"))
    assert "loopback" in result.reason and protected.requests == []


async def test_redirects_are_capped(servers):
    images, _ = servers
    images.redirect("/loop.png", "/loop.png")
    fetcher = fetcher_for(images, max_redirects=3)
    result = await fetcher.check_image(images.url("/loop.png"))
    assert result.outcome == "failed" and "more than 3 redirects" in result.reason
    assert len(images.requests) == 4


async def test_the_connection_goes_to_the_checked_address_not_a_second_lookup(servers):
    images, _ = servers
    calls = []
    answers = iter([["127.0.0.1"]])
    # A second lookup would answer an address nothing listens on: only pinning can succeed.
    resolver = table_resolver({"pinned.example": lambda: next(answers, ["127.0.0.9"])}, calls)
    fetcher = fetcher_for(images, resolver, allow=(f"pinned.example:{images.port}",))
    result = await fetcher.check_image(f"http://pinned.example:{images.port}/a.png")
    assert result.outcome == "ok", result
    assert calls == ["pinned.example"]
    assert images.requests[0].headers["Host"] == f"pinned.example:{images.port}"


# ------------------------------------------------------------------ the positive path


async def test_head_answers_an_image(servers):
    images, _ = servers
    fetcher = fetcher_for(images)
    result = await fetcher.check_image(images.url("/cat.png"))
    assert (result.outcome, result.status, result.methods) == ("ok", 200, ["HEAD"])
    assert result.content_type == "image/png"
    assert [r.method for r in images.requests] == ["HEAD"]


@pytest.mark.parametrize("refused", [405, 403, 501])
async def test_head_refused_falls_back_to_a_ranged_get(servers, refused):
    images, _ = servers
    images.no_head("/nohead.png", refused)
    result = await fetcher_for(images).check_image(images.url("/nohead.png"))
    assert (result.outcome, result.status, result.methods) == ("ok", 206, ["HEAD", "GET"])
    get = images.requests[1]
    assert get.method == "GET" and get.headers["Range"] == "bytes=0-1023"


async def test_a_huge_body_is_not_downloaded(servers):
    images, _ = servers
    images.endless("/huge.png")
    result = await fetcher_for(images).check_image(images.url("/huge.png"))
    assert result.outcome == "ok" and result.methods == ["HEAD", "GET"]
    await asyncio.sleep(0.2)  # let the server notice the hang-up
    assert images.streamed_bytes < 16 * 1024 * 1024


async def test_a_page_is_not_an_image(servers):
    images, _ = servers
    images.content_type("/album", "text/html; charset=utf-8")
    result = await fetcher_for(images).check_image(images.url("/album"))
    assert result.outcome == "failed" and result.reason == "not an image (Content-Type text/html)"


@pytest.mark.parametrize("status, outcome", [(404, "failed"), (410, "failed"),
                                             (400, "failed"), (401, "blocked"),
                                             (403, "blocked"), (429, "blocked"),
                                             (500, "server_error"), (503, "server_error")])
async def test_status_outcomes(servers, status, outcome):
    images, _ = servers
    images.status("/x.png", status)
    result = await fetcher_for(images).check_image(images.url("/x.png"))
    assert (result.outcome, result.status) == (outcome, status)


# ------------------------------------------------------------------ hotlink protection


async def test_a_403_on_head_and_on_the_ranged_get_is_blocked_not_a_failure(servers):
    images, _ = servers
    images.status("/hotlinked.png", 403)  # HEAD and GET alike: a host that keeps bots out
    result = await fetcher_for(images).check_image(images.url("/hotlinked.png"))
    assert (result.outcome, result.status, result.methods) == ("blocked", 403, ["HEAD", "GET"])
    assert result.reason == "blocked by the host (HTTP 403)"
    assert [(r.method, r.headers.get("Range")) for r in images.requests] == \
        [("HEAD", None), ("GET", "bytes=0-1023")]


@pytest.mark.parametrize("head, get, outcome", [(403, 404, "failed"), (403, 410, "failed"),
                                                (403, 429, "blocked"), (403, 206, "ok"),
                                                (405, 403, "blocked")])
async def test_after_a_refused_head_the_get_decides(servers, head, get, outcome):
    images, _ = servers
    images.by_method("/x.png", head, get)
    result = await fetcher_for(images).check_image(images.url("/x.png"))
    assert (result.outcome, result.status, result.methods) == (outcome, get, ["HEAD", "GET"])


async def test_a_rate_limited_head_is_not_followed_by_a_get(servers):
    images, _ = servers
    images.status("/busy.png", 429)
    result = await fetcher_for(images).check_image(images.url("/busy.png"))
    assert (result.outcome, result.methods) == ("blocked", ["HEAD"])
    assert [r.method for r in images.requests] == ["HEAD"]


# ------------------------------------------------------------------ status and timing


async def test_the_time_spent_on_the_requests_is_measured(servers):
    images, _ = servers
    images.no_head("/slow.png")
    images.delay("/slow.png", 0.15)
    result = await fetcher_for(images).check_image(images.url("/slow.png"))
    assert (result.outcome, result.status, result.methods) == ("ok", 206, ["HEAD", "GET"])
    # Both requests waited 0.15 s, and both are counted.
    assert result.response_time_ms is not None and result.response_time_ms >= 300
    quick = await fetcher_for(images).check_image(images.url("/quick.png"))
    assert quick.status == 200 and isinstance(quick.response_time_ms, int)
    assert quick.response_time_ms >= 0


async def test_no_answer_has_no_status_and_no_request_has_no_time(servers):
    images, _protected = servers
    refused = await fetcher_for(images).check_image("http://10.0.0.1/a.png")
    assert (refused.outcome, refused.status, refused.response_time_ms) == ("failed", None, None)
    unresolvable = await fetcher_for(images, table_resolver({})).check_image(
        "https://nowhere.example/a.png")
    assert (unresolvable.status, unresolvable.response_time_ms) == (None, None)
    port = images.port
    await images.__aexit__(None, None, None)
    gone = await fetcher_for(images).check_image(f"http://127.0.0.1:{port}/a.png")
    # A connection was attempted (so it took some time) but nothing answered.
    assert gone.outcome == "failed" and gone.status is None
    assert isinstance(gone.response_time_ms, int)


async def test_a_redirect_between_allowed_places_is_followed(servers):
    images, _ = servers
    images.redirect("/old.png", "/new.png", status=301)
    result = await fetcher_for(images).check_image(images.url("/old.png"))
    assert result.outcome == "ok" and result.final_url == images.url("/new.png")


async def test_a_dead_server_is_a_network_failure(servers):
    images, _ = servers
    port = images.port
    await images.__aexit__(None, None, None)
    result = await fetcher_for(images).check_image(f"http://127.0.0.1:{port}/a.png")
    assert result.outcome == "failed" and result.reason.startswith("network error")


async def test_a_host_that_never_answers_fails_in_bounded_time():
    async def stall(reader, writer):  # reads the request, never answers
        await reader.read()
        writer.close()

    tarpit = await asyncio.start_server(stall, "127.0.0.1", 0)
    port = tarpit.sockets[0].getsockname()[1]
    try:
        fetcher = SafeFetcher(FetchPolicy(unsafe_allow_hosts=(f"127.0.0.1:{port}",), timeout=0.3))
        result = await fetcher.check_image(f"http://127.0.0.1:{port}/slow.png")
        assert result.outcome == "failed" and result.reason.startswith("network error")
        # The wait until the timeout is what the request cost; no HTTP status arrived.
        assert result.status is None and result.response_time_ms >= 250
    finally:
        tarpit.close()
        await tarpit.wait_closed()
