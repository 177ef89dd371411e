"""Human pages: channel list, per-channel dashboard, recent chat (login), command help, login.

Everything is rendered by Jinja2 with autoescaping, scripts come only from /static (the CSP
forbids inline script), and chart data is served as JSON and drawn by Chart.js in the browser.
A chat line containing <script> therefore shows as text and can never run.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import jinja2
from aiohttp import web

from daz import __version__
from daz.web.auth import Auth, load_or_create_token
from daz.web.keys import AUTH, DAZ_APP

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"
CSP = ("default-src 'self'; img-src 'self' http: https: data:; script-src 'self'; "
       "style-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
       "form-action 'self'")

_templates = jinja2.Environment(
    loader=jinja2.PackageLoader("daz.web", "templates"),
    autoescape=True, trim_blocks=True, lstrip_blocks=True)


def render(request: web.Request, template: str, status: int = 200, **values: Any) -> web.Response:
    app = request.app[DAZ_APP]
    auth: Auth = request.app[AUTH]
    html = _templates.get_template(template).render(
        version=__version__, logged_in=auth.logged_in(request),
        channels=[room.channel for room in app.rooms], **values)
    return web.Response(text=html, status=status, content_type="text/html",
                        headers={"Content-Security-Policy": CSP, "Cache-Control": "no-store"})


def _room_for(request: web.Request):
    app = request.app[DAZ_APP]
    channel = request.match_info["channel"]
    room = app.rooms.by_channel(channel)
    if room is None:
        raise web.HTTPNotFound(text=f"daz is not in a channel called {channel[:40]!r}")
    return app, room


def _require(request: web.Request, aggregate: bool) -> None:
    auth: Auth = request.app[AUTH]
    allowed = auth.may_see_aggregates(request) if aggregate else auth.logged_in(request)
    if not allowed:
        raise web.HTTPFound(f"/login?next={request.path_qs if request.path_qs.startswith('/') else '/'}")


async def _fetch(app, sql: str, *args) -> list:
    if app.db is None:
        return []
    try:
        return await app.db.fetch(sql, *args)
    except Exception as exc:  # a page should still render without its database numbers
        log.warning("dashboard query failed: %s", exc)
        return []


# ---------------------------------------------------------------------------- handlers


async def index(request: web.Request) -> web.Response:
    app = request.app[DAZ_APP]
    rooms = []
    for room in app.rooms:
        state = room.state
        rooms.append({"channel": room.channel, "joined": room.status().get("joined"),
                      "users": len(state.users),
                      "playing": state.current_media.title if state.current_media else ""})
    return render(request, "index.html", rooms=rooms)


async def dashboard(request: web.Request) -> web.Response:
    _require(request, aggregate=True)
    app, room = _room_for(request)
    state = room.state
    users = sorted(state.users.values(), key=lambda u: (-u.rank, u.name.lower()))
    channel = room.channel
    recent = await _fetch(app, """
        SELECT title, media_type, media_id, started_at, duration, completed
        FROM daz_mediatracker_plays WHERE channel = $1 ORDER BY started_at DESC LIMIT 10""",
                          channel)
    top_media = await _fetch(app, """
        SELECT title, play_count FROM daz_mediatracker_stats WHERE channel = $1
        ORDER BY play_count DESC, title LIMIT 10""", channel)
    top_chatters = await _fetch(app, """
        SELECT username, total_messages FROM daz_analytics_user_stats WHERE channel = $1
        ORDER BY total_messages DESC, username LIMIT 10""", channel)
    totals = await _fetch(app, """
        SELECT coalesce(sum(message_count), 0) AS messages FROM daz_analytics_hourly
        WHERE channel = $1 AND hour_start >= $2""", channel,
                          _naive(datetime.now(timezone.utc) - timedelta(days=7)))
    return render(request, "dashboard.html", channel=channel, users=users,
                  bot_name=state.bot_name, now_playing=state.current_media,
                  recent=recent, top_media=top_media, top_chatters=top_chatters,
                  messages_7d=totals[0]["messages"] if totals else 0,
                  gallery=_has_gallery(request))


def _has_gallery(request: web.Request) -> bool:
    return any(getattr(route.resource, "canonical", "").startswith("/gallery/")
               for route in request.app.router.routes() if route.resource is not None)


def _naive(moment: datetime) -> datetime:
    """The Go schema stores UTC in 'timestamp without time zone' columns."""
    return moment.astimezone(timezone.utc).replace(tzinfo=None)


async def dashboard_data(request: web.Request) -> web.Response:
    _require(request, aggregate=True)
    app, room = _room_for(request)
    now = datetime.now(timezone.utc)
    hourly = await _fetch(app, """
        SELECT hour_start, message_count, unique_users FROM daz_analytics_hourly
        WHERE channel = $1 AND hour_start >= $2 ORDER BY hour_start""",
                          room.channel, _naive(now - timedelta(days=7)))
    daily = await _fetch(app, """
        SELECT day_date, total_messages, unique_users FROM daz_analytics_daily
        WHERE channel = $1 AND day_date >= $2 ORDER BY day_date""",
                         room.channel, (now - timedelta(days=90)).date())
    body = {
        "channel": room.channel,
        "hourly": [{"t": r["hour_start"].strftime("%Y-%m-%d %H:00"),
                    "messages": int(r["message_count"] or 0),
                    "users": int(r["unique_users"] or 0)} for r in hourly],
        "daily": [{"t": r["day_date"].isoformat(), "messages": int(r["total_messages"] or 0),
                   "users": int(r["unique_users"] or 0)} for r in daily],
    }
    return web.json_response(body, headers={"Cache-Control": "no-store"})


async def chat_page(request: web.Request) -> web.Response:
    _require(request, aggregate=False)
    app, room = _room_for(request)
    lines = await _fetch(app, """
        SELECT username, message, "timestamp" FROM daz_chat_log WHERE channel = $1
        ORDER BY "timestamp" DESC, id DESC LIMIT 200""", room.channel)
    return render(request, "chat.html", channel=room.channel, lines=list(reversed(lines)))


async def help_page(request: web.Request) -> web.Response:
    app = request.app[DAZ_APP]
    commands = []
    for entry in app.commands.all():
        spec = entry.spec
        commands.append({"name": spec.name, "aliases": spec.aliases, "usage": spec.usage,
                         "description": spec.description, "min_rank": spec.min_rank,
                         "admin_only": spec.admin_only, "enabled": entry.enabled,
                         "plugin": entry.plugin, "cooldown": spec.cooldown})
    prefix = app.config.plugin_section("eventfilter").get("command_prefix", "!")
    return render(request, "help.html", commands=commands, prefix=prefix)


async def login_form(request: web.Request) -> web.Response:
    return render(request, "login.html", next=_safe_next(request.query.get("next")), error="")


async def login(request: web.Request) -> web.Response:
    auth: Auth = request.app[AUTH]
    form = await request.post()
    target = _safe_next(form.get("next"))
    token = form.get("token")
    if not isinstance(token, str) or not auth.check_token(token):
        log.warning("web: failed login from %s", request.remote)
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
        return value
    return "/"


def page_routes() -> list:
    return [
        web.get("/", index),
        web.get("/c/{channel}", dashboard),
        web.get("/c/{channel}/data.json", dashboard_data),
        web.get("/c/{channel}/chat", chat_page),
        web.get("/help", help_page),
        web.get("/login", login_form),
        web.post("/login", login),
        web.post("/logout", logout),
        web.static("/static", STATIC_DIR, append_version=False),
    ]


def make_auth(app) -> Auth:
    web_config = app.config.core.web
    token = load_or_create_token(web_config.token, getattr(app, "data_dir", None))
    return Auth(token, public_aggregates=web_config.public_aggregates)
