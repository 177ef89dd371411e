"""Human pages: channel list, per-channel dashboard, command help; recent chat, private messages
and per-user history (these three need a login, see auth.py).

Everything is rendered by Jinja2 with autoescaping, scripts come only from /static (the CSP
forbids inline script), and chart data is served as JSON and drawn by Chart.js in the browser.
A chat line containing <script> therefore shows as text and can never run.
"""
from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
from aiohttp import web

from daz import __version__
from daz.web import filters, live, queries
from daz.web.auth import Auth, load_or_create_token
from daz.web.host import WebHost
from daz.web.keys import AUTH, COMMAND_PREFIX, HOST, LIVE

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"
CSP = ("default-src 'self'; img-src 'self' http: https: data:; script-src 'self'; "
       "style-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
       "form-action 'self'")

_templates = jinja2.Environment(
    loader=jinja2.PackageLoader("daz.web", "templates"),
    autoescape=True, trim_blocks=True, lstrip_blocks=True)
filters.install(_templates)
PM_SENT = "cytube.event.pm.sent"  # daz's own PMs, stored as the plain text it sent


def render(request: web.Request, template: str, status: int = 200, **values: Any) -> web.Response:
    app = request.app[HOST]
    auth: Auth = request.app[AUTH]
    html = _templates.get_template(template).render(
        version=__version__, logged_in=auth.logged_in(request),
        channels=[room.channel for room in app.config.enabled_rooms], **values)
    return web.Response(text=html, status=status, content_type="text/html",
                        headers={"Content-Security-Policy": CSP, "Cache-Control": "no-store"})


def _room_for(request: web.Request):
    app = request.app[HOST]
    channel = request.match_info["channel"]
    room = app.rooms.by_channel(channel)
    if room is None:
        holder = _holder_of(app, channel)
        if holder is not None and holder[1]:  # another instance of this daz is in it
            raise web.HTTPFound(holder[1] + request.path_qs)
        if holder is not None:
            raise web.HTTPNotFound(text=f"{channel[:40]!r} is held by the daz instance "
                                        f"{holder[0]}, which has no web server")
        raise web.HTTPNotFound(text=f"daz is not in a channel called {channel[:40]!r}")
    return app, room


def _holder_of(app: WebHost, channel: str) -> tuple[str, str] | None:
    return app.holder.elsewhere(channel) if app.holder is not None else None


def _require(request: web.Request, aggregate: bool) -> None:
    auth: Auth = request.app[AUTH]
    allowed = auth.may_see_aggregates(request) if aggregate else auth.logged_in(request)
    if not allowed:
        raise web.HTTPFound(f"/login?next={quote(request.path_qs, safe='/')}")


# ---------------------------------------------------------------------------- handlers


async def index(request: web.Request) -> web.Response:
    app = request.app[HOST]
    rooms = []
    here = app.holder.name if app.holder is not None else ""
    for config in app.config.enabled_rooms:
        room = app.rooms.by_channel(config.channel)
        if room is not None:
            state = room.state
            rooms.append({"channel": room.channel, "joined": room.status().get("joined"),
                          "users": len(state.users), "instance": here,
                          "playing": state.current_media.title if state.current_media else ""})
            continue
        holder = _holder_of(app, config.channel)
        rooms.append({"channel": config.channel, "elsewhere": True,
                      "instance": holder[0] if holder else "",
                      "url": (holder[1] + "/c/" + quote(config.channel)) if holder and holder[1]
                      else ""})
    return render(request, "index.html", rooms=rooms)


async def dashboard(request: web.Request) -> web.Response:
    _require(request, aggregate=True)
    app, room = _room_for(request)
    state = room.state
    figures = await queries.dashboard_figures(app.db, room.channel, datetime.now(UTC))
    here_since = figures.pop("here_since")
    users = [{"name": u.name, "rank": u.rank, "afk": u.afk, "muted": u.muted or u.smuted,
              "since": here_since.get(u.name.lower())}
             for u in sorted(state.users.values(), key=lambda u: (-u.rank, u.name.lower()))]
    return render(request, "dashboard.html", channel=room.channel, users=users,
                  bot_name=state.bot_name, now_playing=state.current_media,
                  paused=state.paused, gallery=_has_gallery(request), **figures)


def _has_gallery(request: web.Request) -> bool:
    return any(getattr(route.resource, "canonical", "").startswith("/gallery/")
               for route in request.app.router.routes() if route.resource is not None)


async def dashboard_data(request: web.Request) -> web.Response:
    _require(request, aggregate=True)
    app, room = _room_for(request)
    wanted = request.query.get("range", "auto")
    if wanted not in queries.RANGES and wanted != "auto":
        raise web.HTTPBadRequest(text=f"range must be one of {', '.join(queries.RANGES)}")
    body = {"channel": room.channel, **await queries.chart_series(
        app.db, room.channel, datetime.now(UTC), wanted)}
    return web.json_response(body, headers={"Cache-Control": "no-store"})


async def dashboard_live(request: web.Request) -> web.StreamResponse:
    """Server-sent events: the room's people, media and message counter as they change."""
    _require(request, aggregate=True)
    app, room = _room_for(request)
    base = await queries.live_base(app.db, room.channel, datetime.now(UTC))
    return await live.stream(request, room, request.app[LIVE], base["here_since"],
                             base["messages_7d"])


async def chat_page(request: web.Request) -> web.Response:
    _require(request, aggregate=False)
    app, room = _room_for(request)
    lines = await queries.chat_lines(app.db, room.channel)
    return render(request, "chat.html", channel=room.channel, lines=lines)


async def pms_page(request: web.Request) -> web.Response:
    _require(request, aggregate=False)
    app, room = _room_for(request)
    messages = await queries.private_messages(app.db, room.channel)
    return render(request, "pms.html", channel=room.channel, messages=messages,
                  sent_type=PM_SENT)


async def user_page(request: web.Request) -> web.Response:
    _require(request, aggregate=False)
    app, room = _room_for(request)
    username = request.match_info["user"][:100]
    history = await queries.user_history(app.db, room.channel, username)
    present = room.state.user(username)
    return render(request, "user.html", channel=room.channel, username=username,
                  present=present, **history)


def who_may_use(spec) -> str:
    """The help page's "who" column: an admin-only command is no one's by rank (the dispatcher
    checks admin first), so it never reads "rank 0"."""
    if spec.admin_only:
        return "bot admins"
    return f"{spec.min_rank:g}"


async def help_page(request: web.Request) -> web.Response:
    app = request.app[HOST]
    commands = []
    for entry in app.commands.all():
        spec = entry.spec
        commands.append({"name": spec.name, "aliases": spec.aliases, "usage": entry.usage,
                         "examples": [e.line for e in spec.examples],
                         "subcommands": [(sub.usage, sub.spec.description)
                                         for sub in entry.subcommands],
                         "description": spec.description, "who": who_may_use(spec),
                         "admin_only": spec.admin_only, "enabled": entry.enabled,
                         "plugin": entry.plugin, "cooldown": spec.cooldown})
    return render(request, "help.html", commands=commands, prefix=request.app[COMMAND_PREFIX])


async def login_form(request: web.Request) -> web.Response:
    return render(request, "login.html", next=_safe_next(request.query.get("next")), error="")


async def login(request: web.Request) -> web.Response:
    auth: Auth = request.app[AUTH]
    form = await request.post()
    target = _safe_next(form.get("next"))
    token = form.get("token")
    client = auth.client(request)
    if not isinstance(token, str) or not auth.check_token(token):
        if auth.refused(client):
            log.warning("web: login from %s refused, too many wrong tokens", client)
            return render(request, "login.html", status=429, next=target,
                          error="Too many wrong tokens; try again in a minute.")
        auth.record_failure(client)
        log.warning("web: failed login from %s", client)
        return render(request, "login.html", status=403, next=target, error="Wrong token.")
    response = web.HTTPFound(target)
    auth.set_cookie(response, auth.new_session(), secure=request.secure)
    raise response


async def logout(request: web.Request) -> web.Response:
    auth: Auth = request.app[AUTH]
    from daz.web.auth import COOKIE

    auth.end_session(request.cookies.get(COOKIE))
    response = web.HTTPFound("/")
    response.del_cookie(COOKIE, path="/")
    raise response


def _safe_next(value: Any) -> str:
    """Only same-site paths: never an open redirect to another host."""
    if isinstance(value, str) and value.startswith("/") and not value.startswith("//") \
            and "\\" not in value:
        # Spaces, control characters and non-ASCII are encoded: a header cannot be split.
        return quote(value, safe="/?&=%#;:@+,!$'()*")
    return "/"


def page_routes() -> list:
    return [
        web.get("/", index),
        web.get("/c/{channel}", dashboard),
        web.get("/c/{channel}/data.json", dashboard_data),
        web.get("/c/{channel}/live", dashboard_live),
        web.get("/c/{channel}/chat", chat_page),
        web.get("/c/{channel}/pms", pms_page),
        web.get("/c/{channel}/u/{user}", user_page),
        web.get("/help", help_page),
        web.get("/login", login_form),
        web.post("/login", login),
        web.post("/logout", logout),
        web.static("/static", STATIC_DIR, append_version=False),
    ]


def make_auth(app: WebHost) -> Auth:
    web_config = app.config.core.web
    token = load_or_create_token(web_config.token, app.data_dir)
    return Auth(token, public_aggregates=web_config.public_aggregates,
                trusted_proxies=web_config.trusted_proxies)
