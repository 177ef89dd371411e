"""Login for pages that show chat text, PMs or per-user history.

One shared token (config ``core.web.token``, or generated at first start, stored in the data
dir with owner-only permissions and printed once). The token is compared in constant time; a
successful login gets a random session id in an HttpOnly, SameSite=Strict cookie.

Wrong tokens are throttled per client address, but the right token is always let in: the
throttle keeps guessers quiet, it must never lock the owner out. Behind a reverse proxy
(``core.web.trusted_proxies``) the client is the address the proxy puts in X-Forwarded-For,
so one guesser cannot throttle everyone who comes through the same proxy.
"""
from __future__ import annotations

import hmac
import ipaddress
import logging
import secrets
import time
from pathlib import Path

from aiohttp import web

from daz.private_files import open_private, private_dir

log = logging.getLogger(__name__)

COOKIE = "daz_session"
SESSION_SECONDS = 7 * 24 * 3600
TOKEN_FILE = "web-token"
# Guessing is slowed per client address: this many wrong tokens within the window, then refused
# until the window has passed. The token has 192 random bits; this only keeps logs and CPU quiet.
FAILURES_ALLOWED = 10
FAILURE_WINDOW_SECONDS = 60.0
MAX_TRACKED_CLIENTS = 10_000


def load_or_create_token(configured: str, data_dir: Path | None) -> str:
    if configured:
        return configured
    if data_dir is None:
        return secrets.token_urlsafe(24)
    path = Path(data_dir) / TOKEN_FILE
    if path.exists():
        token = path.read_text(encoding="utf-8").strip()
        if token:
            return token
    token = secrets.token_urlsafe(24)
    private_dir(path.parent)
    with open_private(path, "w") as f:
        f.write(token + "\n")
    # Printed once, on the run that created it; later runs read the file quietly.
    print(f"daz: web login token (saved in {path}): {token}", flush=True)
    return token


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def trusted_networks(entries: list[str]) -> list[Network]:
    return [ipaddress.ip_network(entry, strict=False) for entry in entries]


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # [v6]:port
        text = text[1:text.index("]")]
    elif text.count(":") == 1:  # v4:port
        text = text.split(":")[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def client_address(request: web.BaseRequest, trusted: list[Network]) -> str:
    """The address a request really came from. X-Forwarded-For is read only when the peer is a
    trusted proxy, from the right (the hop nearest to us), skipping further trusted proxies:
    whatever a client writes into the header itself is further left and never believed."""
    peer = request.remote or "?"
    if not trusted or not _is_trusted(_address(peer), trusted):
        return peer
    hops = [hop for header in request.headers.getall("X-Forwarded-For", [])
            for hop in header.split(",") if hop.strip()]
    for hop in reversed(hops):
        address = _address(hop)
        if address is None:
            return peer  # a hop we cannot read: stop believing the header there
        if not _is_trusted(address, trusted):
            return str(address)
    return str(_address(hops[0])) if hops else peer


def _is_trusted(address, trusted: list[Network]) -> bool:
    return address is not None and any(address in network for network in trusted)


class Auth:
    def __init__(self, token: str, public_aggregates: bool = True,
                 trusted_proxies: list[str] | None = None):
        self._token = token.encode("utf-8")
        self.public_aggregates = public_aggregates
        self.trusted = trusted_networks(trusted_proxies or [])
        self._sessions: dict[str, float] = {}
        self._failures: dict[str, list[float]] = {}

    def check_token(self, given: str) -> bool:
        return hmac.compare_digest(self._token, given.encode("utf-8", "surrogatepass"))

    def client(self, request: web.BaseRequest) -> str:
        return client_address(request, self.trusted)

    def refused(self, client: str | None) -> bool:
        """Too many wrong tokens from this address lately."""
        recent = self._recent_failures(client or "?")
        return len(recent) >= FAILURES_ALLOWED

    def record_failure(self, client: str | None) -> None:
        key = client or "?"
        recent = self._recent_failures(key)
        recent.append(time.monotonic())
        self._failures[key] = recent
        if len(self._failures) > MAX_TRACKED_CLIENTS:  # bounded, whoever is knocking
            for other in list(self._failures):
                if not self._recent_failures(other):
                    del self._failures[other]
            while len(self._failures) > MAX_TRACKED_CLIENTS:
                del self._failures[next(iter(self._failures))]

    def _recent_failures(self, key: str) -> list[float]:
        cutoff = time.monotonic() - FAILURE_WINDOW_SECONDS
        recent = [t for t in self._failures.get(key, ()) if t > cutoff]
        if key in self._failures:
            self._failures[key] = recent
        return recent

    def new_session(self) -> str:
        self._expire()
        session = secrets.token_urlsafe(32)
        self._sessions[session] = time.time() + SESSION_SECONDS
        return session

    def end_session(self, session: str | None) -> None:
        if session:
            self._sessions.pop(session, None)

    def logged_in(self, request: web.Request) -> bool:
        session = request.cookies.get(COOKIE)
        if not session:
            return False
        expires = self._sessions.get(session)
        return expires is not None and expires > time.time()

    def may_see_aggregates(self, request: web.Request) -> bool:
        return self.public_aggregates or self.logged_in(request)

    def set_cookie(self, response: web.StreamResponse, session: str, secure: bool) -> None:
        response.set_cookie(COOKIE, session, max_age=SESSION_SECONDS, httponly=True,
                            samesite="Strict", secure=secure, path="/")

    def _expire(self) -> None:
        now = time.time()
        for session, expires in list(self._sessions.items()):
            if expires <= now:
                del self._sessions[session]
