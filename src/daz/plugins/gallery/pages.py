"""Gallery pages: served live by daz's web server, and written out as static files.

``/gallery/<channel>`` shows everyone's active images posted there (people ordered by their
newest post), ``/gallery/<channel>/<user>`` one person's, ``PAGE_SIZE`` images a page
(``?page=N``, with links to the others); the first page ends with the graveyard of dead images
(listed as text, never loaded). Locked galleries are not shown.

Everything in a page came from chat, so it is treated as hostile: Jinja2 autoescapes every
value (attributes are always quoted), a URL is only ever put in ``src``/``href`` when it parses
as http(s) with a host and has no control characters (anything else is shown as text), and
the Content-Security-Policy allows no script at all.
"""
from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
from aiohttp import web
from yarl import URL

from daz import __version__
from daz.plugins.gallery.detect import MAX_URL_LENGTH
from daz.plugins.gallery.store import GalleryStore
from daz.web import filters

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"
ASSETS_PATH = "/gallery-assets"
CSP = ("default-src 'none'; img-src http: https:; style-src 'self'; script-src 'none'; "
       "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")

_env = jinja2.Environment(
    loader=jinja2.ChoiceLoader([jinja2.FileSystemLoader(str(TEMPLATES)),
                                jinja2.PackageLoader("daz.web", "templates")]),
    autoescape=True, trim_blocks=True, lstrip_blocks=True)
filters.install(_env)  # the shared base.html uses the web pages' filters
_SLUG_SAFE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def safe_src(url: Any) -> str | None:
    """``url`` if it may go in src/href: http(s), a host, no control characters; else None."""
    if not isinstance(url, str) or not url or len(url) > MAX_URL_LENGTH:
        return None
    if any(ord(c) < 0x21 or 0x7f <= ord(c) < 0xa0 for c in url):
        return None
    try:
        parsed = URL(url)
    except (ValueError, TypeError):
        return None
    if parsed.scheme not in ("http", "https") or not parsed.raw_host or not parsed.is_absolute():
        return None
    return url


def slug(name: str) -> str:
    """A file-name-safe, collision-free stand-in for a user or channel name."""
    if _SLUG_SAFE.match(name) and name not in (".", ".."):
        return name
    cleaned = re.sub(r"[^A-Za-z0-9_-]+", "-", name)[:40].strip("-") or "x"
    return f"{cleaned}-{hashlib.sha256(name.encode('utf-8', 'surrogatepass')).hexdigest()[:10]}"


@dataclass
class UserGallery:
    name: str
    link: str
    anchor: str
    images: list[dict] = field(default_factory=list)


def _stamp(moment: datetime | None) -> tuple[str, str]:
    if moment is None:
        return "", ""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%d %H:%M UTC"), moment.isoformat()


def _image(row) -> dict:
    posted, posted_iso = _stamp(row["posted_at"])
    died, died_iso = _stamp(row["last_check_at"] or row["posted_at"])
    return {"url": row["url"], "src": safe_src(row["url"]), "username": row["username"],
            "posted": posted, "posted_iso": posted_iso, "died": died, "died_iso": died_iso,
            "reason": row["pruned_reason"] or ""}


PAGE_SIZE = 100  # images a page shows; a channel with years of history has 100 k
EXPORT_PAGE_SIZE = 2000  # the static export is one file per gallery
COUNT_SECONDS = 30.0  # how long a gallery's image count is reused


class ImageCounts:
    """How many images each gallery has, remembered for ``COUNT_SECONDS``. Counting a channel's
    100 k images costs tens of milliseconds, on every page of it; a count half a minute old
    only shifts the page boundaries by the images posted meanwhile (pages are newest first,
    so nothing becomes unreachable: the last page may miss them until the count is redone)."""

    def __init__(self, monotonic: Callable[[], float], seconds: float = COUNT_SECONDS):
        self.monotonic = monotonic
        self.seconds = seconds
        self._known: dict[tuple[str, str | None], tuple[float, int]] = {}

    async def get(self, channel: str, user: str | None,
                  count: Callable[[], Awaitable[int]]) -> int:
        key = (channel, user.lower() if user else None)
        now = self.monotonic()
        known = self._known.get(key)
        if known is not None and now - known[0] < self.seconds:
            return known[1]
        if len(self._known) > 10_000:  # one entry per gallery viewed: never unbounded
            self._known.clear()
        total = await count()
        self._known[key] = (now, total)
        return total


@dataclass(frozen=True)
class PageLink:
    number: int
    href: str
    current: bool


def page_links(page: int, pages: int, href: Callable[[int], str]) -> list[PageLink | None]:
    """First, last, and the pages around the current one; None marks a gap."""
    wanted = sorted({1, pages, *range(max(1, page - 2), min(pages, page + 2) + 1)})
    out: list[PageLink | None] = []
    for previous, number in itertools.pairwise([0, *wanted]):
        if number - previous > 1:
            out.append(None)
        out.append(PageLink(number, href(number), number == page))
    return out


async def gallery_context(store: GalleryStore, channel: str, user: str | None,
                          user_link: Callable[[str], str], back_link: str = "", page: int = 1,
                          per_page: int = PAGE_SIZE,
                          page_href: Callable[[int], str] | None = None,
                          counts: ImageCounts | None = None) -> dict:
    """What a gallery page shows (page ``page`` of the active images, newest first, then on
    the first page the graveyard); the same for the live page and the export."""
    offset = (page - 1) * per_page
    if user is None:
        def count() -> Awaitable[int]:
            return store.count_channel_images(channel)
    else:
        def count() -> Awaitable[int]:
            return store.count_user_images(channel, user)
    total = await (counts.get(channel, user, count) if counts is not None else count())
    if user is None:
        rows = await store.channel_images(channel, per_page, offset) if offset < total else []
        locked = False
    else:
        rows = await store.user_images(channel, user, per_page, offset) if offset < total else []
        locked = not total and await store.user_locked_anywhere_named(channel, user)
    galleries: dict[str, UserGallery] = {}
    for row in rows:  # newest first, so people come out ordered by their newest post
        name = row["username"]
        if name not in galleries:
            galleries[name] = UserGallery(name=name, link=user_link(name) if user is None else "",
                                          anchor=slug(name))
        galleries[name].images.append(_image(row))
    show_graveyard = page == 1 and not locked
    graveyard = [_image(r) for r in await store.graveyard(channel, user)] if show_graveyard \
        else []
    pages = max(1, -(-total // per_page))
    title = f"{user}'s gallery in {channel}" if user else f"Gallery of {channel}"
    return {"title": title, "channel": channel, "users": list(galleries.values()),
            "image_count": total, "shown_from": offset + 1 if rows else 0,
            "shown_to": offset + len(rows), "page": page, "pages": pages,
            "page_links": page_links(page, pages, page_href) if page_href and pages > 1 else [],
            "graveyard": graveyard, "show_graveyard": show_graveyard, "locked": locked,
            "back_link": back_link}


def _page_number(text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 1_000_000:
        raise web.HTTPBadRequest(text=f"page must be a whole number from 1, not {text[:20]!r}")
    return int(text)


def render(template: str, **values: Any) -> str:
    return _env.get_template(template).render(version=__version__, **values)


def routes(plugin) -> list:
    """aiohttp routes for the plugin's pages (public like the channel dashboards)."""
    from daz.web.keys import AUTH, HOST

    counts = ImageCounts(plugin.ctx.clock.monotonic)

    async def page(request: web.Request) -> web.Response:
        auth = request.app[AUTH]
        if not auth.may_see_aggregates(request):
            raise web.HTTPFound(f"/login?next={quote(request.path_qs, safe='/')}")
        channel = request.match_info["channel"]
        user = request.match_info.get("user")
        number = _page_number(request.query.get("page", "1"))
        channel_path = "/gallery/" + quote(channel, safe="")
        here = f"{channel_path}/{quote(user, safe='')}" if user else channel_path
        context = await gallery_context(
            GalleryStore(plugin.ctx.db), channel, user,
            user_link=lambda name: f"{channel_path}/{quote(name, safe='')}",
            back_link=channel_path if user else "", page=number,
            page_href=lambda n: here if n == 1 else f"{here}?page={n}", counts=counts)
        if number > context["pages"]:
            raise web.HTTPNotFound(text=f"there is no page {number}: this gallery has"
                                        f" {context['pages']} page(s)")
        app = request.app[HOST]
        html = render("gallery_page.html", logged_in=auth.logged_in(request),
                      channels=[room.channel for room in app.rooms], **context)
        return web.Response(text=html, content_type="text/html",
                            headers={"Content-Security-Policy": CSP, "Cache-Control": "no-store"})

    return [
        web.get("/gallery/{channel}", page),
        web.get("/gallery/{channel}/{user}", page),
        web.static(ASSETS_PATH, STATIC, append_version=False),
    ]
