"""Typed keys for what daz stores on its aiohttp application."""
from aiohttp import web

from daz.web.auth import Auth
from daz.web.host import WebHost

HOST: web.AppKey[WebHost] = web.AppKey("daz", WebHost)  # what the pages read (web/host.py)
AUTH: web.AppKey[Auth] = web.AppKey("auth", Auth)
LIVE: web.AppKey = web.AppKey("live", object)  # the LiveFeed of web/live.py
# The command prefix /help shows, from the config as validated at start (not per request).
COMMAND_PREFIX: web.AppKey[str] = web.AppKey("command_prefix", str)
