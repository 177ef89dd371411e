"""The gallery's only way onto the network: a fetcher that never reaches anything internal.

Chat users choose the URLs, so every request is treated as hostile:

* only http/https, ports from ``allowed_ports`` (80/443), no credentials in the URL;
* before every request, the first and each redirect hop (followed by hand, at most
  ``max_redirects``), the host is resolved and *every* address must be public
  (``addresses.refusal``); a failed lookup refuses (fail closed);
* the connection goes to the addresses that were checked: aiohttp gets a resolver that knows
  only the vetted host and answers with those addresses, so a second DNS answer (rebinding)
  is never asked for, while the Host header, SNI and certificate check use the real name;
* no body is downloaded: HEAD, or where HEAD is refused a GET for ``bytes=0-1023`` whose
  response is closed after at most ``max_body_bytes``; proxies from the environment are ignored.

What an answer means (``CheckResult.outcome``):

* ``ok``: 2xx with an image Content-Type;
* ``failed`` (counts towards death): 404, 410 and the other 4xx not listed below, a 2xx that is
  not an image, too many redirects or one without a Location, an unsafe or unresolvable target,
  and network errors (refused connection, timeout): the image is gone or cannot be reached;
* ``blocked`` (never kills on its own): 401, 403 and 429, also when the ranged GET after a
  refused HEAD says so. Many image hosts answer these to anything that is not a browser
  (hotlink protection, bot walls, rate limits) while the picture still shows for people, so
  they say nothing about the image; the health check backs off like for a 5xx;
* ``server_error`` (never kills on its own): 5xx, the host's trouble rather than the image's.

Every result also carries ``status``, the HTTP status of the last answer received (``None``
when nothing answered: refused or unresolvable target, refused connection, timeout), and
``response_time_ms``, the time spent on the requests sent, all hops and both methods
(``None`` when no request was sent); the health log records both.

``unsafe_allow_hosts`` (off by default) exempts listed hosts (``host`` or exact ``host:port``)
from the address check; it exists so tests and ``daz sandbox`` can reach a local server (the
sandbox names its own image host) and must stay empty in a real channel.
"""
from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from daz.plugins.gallery.addresses import parse_address, refusal
from daz.plugins.gallery.detect import host_port_allowed, normal_host, static_refusal

log = logging.getLogger(__name__)

Resolver = Callable[[str, int], Awaitable[list[str]]]
USER_AGENT = "daz-gallery/1.0 (image link check)"
HEAD_REFUSED = frozenset({403, 405, 501})
# Answers that show the host keeps us out, not that the image is gone (see the docstring).
BLOCKED = frozenset({401, 403, 429})
REDIRECTS = frozenset({301, 302, 303, 307, 308})


class Refused(Exception):
    """The URL may not be fetched (unsafe target or unresolvable host)."""


@dataclass(frozen=True)
class FetchPolicy:
    allowed_ports: tuple[int, ...] = (80, 443)
    unsafe_allow_hosts: tuple[str, ...] = ()
    max_redirects: int = 3
    timeout: float = 10.0
    dns_timeout: float = 5.0
    max_body_bytes: int = 1024
    user_agent: str = USER_AGENT


@dataclass
class CheckResult:
    outcome: str  # "ok", "failed", "blocked" or "server_error": see the module docstring
    status: int | None = None  # last HTTP status received; None when nothing answered
    reason: str = ""
    content_type: str = ""
    final_url: str = ""
    methods: list[str] = field(default_factory=list)
    response_time_ms: int | None = None  # time spent on the requests; None when none was sent


class _Stopwatch:
    """Adds up the time spent on requests over one check, including one cut off by a timeout."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.requests = 0

    def ms(self) -> int | None:
        return round(self.seconds * 1000) if self.requests else None


async def system_resolver(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class PinnedResolver(AbstractResolver):
    """Answers for the one vetted host only, with the addresses that were vetted."""

    def __init__(self, host: str, addresses: list[str]):
        self.host = host
        self.addresses = addresses

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        if host.lower().rstrip(".") != self.host:
            raise OSError(f"refusing to resolve {host!r}: it was not checked")
        return [{"hostname": host, "host": address, "port": port,
                 "family": socket.AF_INET6 if ":" in address else socket.AF_INET,
                 "proto": 0, "flags": socket.AI_NUMERICHOST | socket.AI_NUMERICSERV}
                for address in self.addresses]

    async def close(self) -> None:
        pass


class SafeFetcher:
    def __init__(self, policy: FetchPolicy | None = None, resolver: Resolver | None = None):
        self.policy = policy or FetchPolicy()
        self.resolver = resolver or system_resolver
        # Every request actually sent: (method, url, address it was pinned to). For logs/tests.
        self.sent: list[tuple[str, str, str]] = []

    # ------------------------------------------------------------------ vetting

    def unsafe_by_name(self, url: str) -> str | None:
        """Why ``url`` names a target that may never be fetched, from the URL alone (an internal
        address literal, a local name, a port not allowed); None when only DNS can tell."""
        try:
            parsed = URL(url)
        except (ValueError, TypeError) as exc:
            return f"URL does not parse: {exc}"[:160]
        return static_refusal(parsed, self.policy.allowed_ports, self.policy.unsafe_allow_hosts)

    async def vet(self, url: URL | str) -> list[str]:
        """The addresses ``url`` may be fetched from; raises ``Refused`` otherwise."""
        if isinstance(url, str):
            try:
                url = URL(url)
            except (ValueError, TypeError) as exc:
                raise Refused(f"URL does not parse: {exc}"[:160]) from None
        policy = self.policy
        why = static_refusal(url, policy.allowed_ports, policy.unsafe_allow_hosts)
        if why:
            raise Refused(f"unsafe URL: {why}")
        host = normal_host(url)
        allowed = host_port_allowed(host, url.port, policy.unsafe_allow_hosts,
                                    policy.allowed_ports)
        literal = parse_address(host)
        if literal is not None:
            addresses = [str(literal)]
        else:
            try:
                addresses = await asyncio.wait_for(self.resolver(host, url.port or 0),
                                                   policy.dns_timeout)
            except TimeoutError:
                raise Refused(f"DNS lookup of {host} timed out") from None
            except (OSError, UnicodeError, ValueError) as exc:
                raise Refused(f"DNS lookup of {host} failed: {exc}"[:200]) from None
            if not addresses:
                raise Refused(f"DNS lookup of {host} gave no address")
        if not allowed:
            for address in addresses:
                why = refusal(address)
                if why:
                    raise Refused(f"unsafe URL: {host} resolves to a {why} ({address})")
        return addresses

    # ------------------------------------------------------------------ checking

    async def check_image(self, url: str) -> CheckResult:
        """Is ``url`` a reachable image? HEAD, then a small ranged GET if HEAD is refused.

        The whole check, redirects included, ends within a few request timeouts, so a host
        that trickles its answers cannot hold a worker for long.
        """
        watch = _Stopwatch()
        try:
            result = await asyncio.wait_for(self._check(url, watch), self.policy.timeout * 3)
        except TimeoutError:
            result = CheckResult(outcome="failed", reason="network error: the check timed out")
        result.response_time_ms = watch.ms()
        return result

    async def _check(self, url: str, watch: _Stopwatch) -> CheckResult:
        result = await self._probe("HEAD", url, watch)
        if result.outcome != "ok" and result.status in HEAD_REFUSED:
            result = await self._probe("GET", url, watch, result.methods)
        return result

    async def _probe(self, method: str, url: str, watch: _Stopwatch,
                     methods: list[str] | None = None) -> CheckResult:
        result = CheckResult(outcome="failed", methods=list(methods or []) + [method])
        try:
            current = URL(url)
        except (ValueError, TypeError) as exc:
            result.reason = f"URL does not parse: {exc}"[:160]
            return result
        for _hop in range(self.policy.max_redirects + 1):
            try:
                addresses = await self.vet(current)
                status, headers = await self._request(method, current, addresses, watch)
            except Refused as exc:
                log.debug("gallery: refused %s: %s", str(current)[:200], exc)
                result.reason = str(exc)
                return result
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                result.reason = f"network error: {type(exc).__name__}: {exc}"[:200]
                return result
            result.status = status
            result.final_url = str(current)
            if status in REDIRECTS:
                location = headers.get("Location", "")
                if not location:
                    result.reason = f"HTTP {status} without a Location"
                    return result
                try:
                    current = current.join(URL(location))
                except (ValueError, TypeError) as exc:
                    result.reason = f"bad redirect: {exc}"[:160]
                    return result
                continue
            return _judge(result, status, headers.get("Content-Type", ""))
        result.reason = f"more than {self.policy.max_redirects} redirects"
        return result

    async def _request(self, method: str, url: URL, addresses: list[str], watch: _Stopwatch):
        policy = self.policy
        headers = {"User-Agent": policy.user_agent, "Accept": "image/*"}
        if method == "GET":
            headers["Range"] = f"bytes=0-{max(policy.max_body_bytes, 1) - 1}"
        host = normal_host(url)
        pinned = addresses[0] if parse_address(host) is not None else ",".join(addresses)
        connector = aiohttp.TCPConnector(resolver=PinnedResolver(host, addresses),
                                         use_dns_cache=False, force_close=True, limit=1)
        timeout = aiohttp.ClientTimeout(total=policy.timeout, connect=policy.timeout,
                                        sock_read=policy.timeout)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout, trust_env=False,
                                         cookie_jar=aiohttp.DummyCookieJar()) as session:
            self.sent.append((method, str(url), pinned))
            watch.requests += 1
            started = time.perf_counter()
            try:
                async with session.request(method, url, headers=headers, allow_redirects=False,
                                           auto_decompress=False) as response:
                    if method == "GET":
                        await _read_at_most(response, policy.max_body_bytes)
                    status, response_headers = response.status, response.headers.copy()
                    response.close()  # never drain the rest of a body
            finally:
                watch.seconds += time.perf_counter() - started
        return status, response_headers


def _judge(result: CheckResult, status: int, content_type: str) -> CheckResult:
    result.content_type = content_type
    if 200 <= status < 300:
        kind = content_type.split(";")[0].strip().lower()
        if kind.startswith("image/"):
            result.outcome = "ok"
            result.reason = ""
        else:
            result.reason = f"not an image (Content-Type {kind or 'missing'})"
    elif status >= 500:
        result.outcome = "server_error"
        result.reason = f"server error (HTTP {status})"
    elif status in BLOCKED:
        result.outcome = "blocked"
        result.reason = f"blocked by the host (HTTP {status})"
    else:
        result.reason = f"HTTP {status}"
    return result


async def _read_at_most(response: aiohttp.ClientResponse, limit: int) -> int:
    got = 0
    while got < limit:
        chunk = await response.content.read(limit - got)
        if not chunk:
            break
        got += len(chunk)
    return got
