"""Finding image links in a chat line.

CyTube sends chat as HTML with links turned into ``<a href>``; the event's ``text`` is the same
line unescaped and tag-free, so URLs are taken from the ``href`` values first and from the text
after. A URL counts as an image link when it is a plain http(s) URL to a name that could be a
public web host, and either its path ends in an image extension, or its host *is* (or is a
subdomain of) a known image host, matched on the parsed host name, never as a substring, so
``notimgur.com.example`` is not imgur. Whether it really is an image is decided later by the
health checker from the Content-Type; whether its host is public, by the fetcher's resolver.
"""
from __future__ import annotations

import html
import re
from dataclasses import dataclass
from urllib.parse import parse_qs

from yarl import URL

from daz.db.text import UNSTORABLE
from daz.plugins.gallery.addresses import parse_address, refusal

MAX_URL_LENGTH = 2048
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp", ".avif", ".svg")
IMAGE_FORMATS = frozenset({"jpg", "jpeg", "png", "gif", "webp", "avif"})
# Hosts that serve images at paths without an extension. Albums or pages on them are HTML and
# fail the Content-Type check.
DEFAULT_IMAGE_HOSTS = (
    "i.imgur.com", "imgur.com", "gyazo.com", "ibb.co", "pinimg.com", "cdn.discordapp.com",
    "media.discordapp.net", "puu.sh", "pbs.twimg.com",
)
LOCAL_SUFFIXES = (".localhost", ".local", ".internal", ".intranet", ".lan", ".home.arpa",
                  ".localdomain", ".corp")

_URL = re.compile(r"""https?://[^\s<>"'{}|\\^`\[\]]+""", re.IGNORECASE)
_HREF = re.compile(r"""<a\s[^>]*?href\s*=\s*(?:"([^"]*)"|'([^']*)')""", re.IGNORECASE)
_TRAILING = ".,!?;:)]}'\""


@dataclass(frozen=True)
class Verdict:
    url: str
    is_image: bool
    why: str  # which rule accepted it, or why it was refused


def candidate_urls(text: str, html_msg: str = "") -> list[str]:
    """Every http(s) URL in the line, in order, without duplicates."""
    found: list[str] = []
    if html_msg and "<a" in html_msg.lower():
        for match in _HREF.finditer(html_msg):
            found.append(html.unescape(match.group(1) or match.group(2) or ""))
    for match in _URL.finditer(text or ""):
        found.append(match.group(0).rstrip(_TRAILING))
    out, seen = [], set()
    for url in found:
        if url.lower().startswith(("http://", "https://")) and url not in seen:
            seen.add(url)
            out.append(url)
    return out


def normal_host(url: URL) -> str:
    """The host as the connection would use it: lower case, IDNA, no trailing dot."""
    return (url.raw_host or "").lower().rstrip(".")


def host_matches(host: str, domains: tuple[str, ...] | list[str]) -> bool:
    """Exact match or a subdomain of one of ``domains`` (never a substring match)."""
    host = host.lower().rstrip(".")
    for domain in domains:
        domain = domain.lower().strip(".")
        if domain and (host == domain or host.endswith("." + domain)):
            return True
    return False


def static_refusal(url: URL, allowed_ports: tuple[int, ...] | list[int],
                   unsafe_allow: tuple[str, ...] | list[str] = ()) -> str | None:
    """Why a URL may never be fetched, judged from the URL alone (no DNS); None if it may."""
    if url.scheme not in ("http", "https"):
        return f"scheme {url.scheme or 'missing'!r} is not http(s)"
    host = normal_host(url)
    if not host:
        return "no host"
    if url.user is not None or url.password is not None:
        return "credentials in the URL"
    port = url.port
    if host_port_allowed(host, port, unsafe_allow, allowed_ports):
        return None
    if port not in allowed_ports:
        return f"port {port} is not allowed"
    if parse_address(host) is not None:
        return refusal(host)
    if "." not in host:
        return "not a public host name"
    if host_matches(host, [s.lstrip(".") for s in LOCAL_SUFFIXES]):
        return "a local host name"
    return None


def host_port_allowed(host: str, port: int | None, unsafe_allow, allowed_ports=(80, 443)) -> bool:
    """Whether ``unsafe_allow_hosts`` lets this host through: an entry ``host:port`` allows
    exactly that port, a bare ``host`` only the allowed ports."""
    host = host.lower().strip("[]").rstrip(".")
    for entry in unsafe_allow:
        entry = entry.lower().strip()
        if entry.startswith("["):  # [::1]:8080 or [::1]
            bracket_host, _, rest = entry[1:].partition("]")
            entry_host, entry_port = bracket_host, rest[1:] if rest.startswith(":") else ""
        elif entry.count(":") == 1:
            entry_host, entry_port = entry.split(":")
        else:
            entry_host, entry_port = entry, ""
        if entry_host == host and (entry_port == str(port)
                                   or (not entry_port and port in allowed_ports)):
            return True
    return False


def classify(raw: str, *, image_hosts=DEFAULT_IMAGE_HOSTS, allowed_ports=(80, 443),
             unsafe_allow=()) -> Verdict:
    """Is ``raw`` an image link daz may collect?"""
    if len(raw) > MAX_URL_LENGTH:
        return Verdict(raw, False, "longer than 2048 characters")
    if any(ord(c) < 0x21 or c == "\x7f" for c in raw):
        return Verdict(raw, False, "control characters or spaces")
    if UNSTORABLE.search(raw):
        # A lone surrogate can be neither stored nor sent in a request: never an image link.
        return Verdict(raw.encode("utf-8", "replace").decode(), False, "a lone surrogate")
    try:
        url = URL(raw)
    except (ValueError, TypeError) as exc:
        return Verdict(raw, False, f"does not parse: {exc}"[:120])
    why_not = static_refusal(url, allowed_ports, unsafe_allow)
    if why_not:
        return Verdict(raw, False, why_not)
    host = normal_host(url)
    path = url.path.lower()
    if path.endswith(IMAGE_EXTENSIONS):
        return Verdict(raw, True, "image extension")
    if host_matches(host, ("pbs.twimg.com",)) and not path.startswith("/media/"):
        return Verdict(raw, False, "twimg link that is not /media/")
    if host_matches(host, image_hosts):
        return Verdict(raw, True, "image host")
    query = parse_qs(url.raw_query_string)
    if any(v.lower() in IMAGE_FORMATS for v in query.get("format", [])):
        return Verdict(raw, True, "format= query")
    return Verdict(raw, False, "no image extension or image host")


def first_image(text: str, html_msg: str = "", **rules) -> Verdict | None:
    """The first image link in a chat line (only one per line is collected)."""
    for url in candidate_urls(text, html_msg):
        verdict = classify(url, **rules)
        if verdict.is_image:
            return verdict
    return None
