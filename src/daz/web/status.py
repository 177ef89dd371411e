"""``GET /status``: everything ``daz status`` prints, as JSON, for the operator only.

It says more than /health (which database, what is queued where, which process holds each
room), so it wants the web login token: ``Authorization: Bearer <token>`` or a logged-in
session. Wrong tokens count towards the same per-address limit as the login form.
"""
from __future__ import annotations

from aiohttp import web

from daz.status_report import build_status
from daz.web.keys import AUTH, HOST


def _authorised(request: web.Request) -> bool:
    auth = request.app[AUTH]
    if auth.logged_in(request):
        return True
    header = request.headers.get("Authorization", "")
    if not header.startswith("Bearer ") or auth.refused(request.remote):
        return False
    if auth.check_token(header[len("Bearer "):].strip()):
        return True
    auth.record_failure(request.remote)
    return False


async def status_page(request: web.Request) -> web.Response:
    if not _authorised(request):
        return web.json_response({"error": "give the web login token: Authorization: Bearer"
                                           " <token> (daz status reads it from the data"
                                           " directory)"}, status=401)
    return web.json_response(await build_status(request.app[HOST]))
