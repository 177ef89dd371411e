"""A fake Ollama HTTP server: the parts of the API the official ``ollama`` client uses.

    server = FakeOllama(reply="g'day")
    await server.start()          # server.url → "http://127.0.0.1:<port>"
    ...
    server.mode = "fail"          # "normal" | "slow" | "fail" | "garbage" | "wrong_shape" |
                                  # "empty" | "hang"
    server.requests               # [(path, json body)] of every request, in order
    await server.stop()

Non-streaming only: ``POST /api/chat`` (reply in ``message.content``), ``POST /api/generate``
(reply in ``response``), ``GET /api/tags`` (the model list). ``reply`` may be a string or a
callable taking the request body and returning one, so a test can answer per prompt.
"""
from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from aiohttp import web

MODES = ("normal", "slow", "fail", "garbage", "wrong_shape", "empty", "hang")


class FakeOllama:
    def __init__(self, *, reply: str | Callable[[dict], str] = "hello there", mode: str = "normal",
                 delay: float = 2.0, model: str = "test-model", host: str = "127.0.0.1",
                 port: int = 0):
        self.reply = reply
        self.mode = mode
        self.delay = delay  # seconds, for mode "slow"
        self.model = model
        self.host = host
        self.port = port
        self.requests: list[tuple[str, Any]] = []
        self._runner: web.AppRunner | None = None
        self._release = asyncio.Event()  # set on stop: hanging handlers return
        self.started_requests = asyncio.Event()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def chat_requests(self) -> list[dict]:
        return [body for path, body in self.requests if path == "/api/chat"]

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/api/chat", self._chat)
        app.router.add_post("/api/generate", self._generate)
        app.router.add_get("/api/tags", self._tags)
        self._runner = web.AppRunner(app, shutdown_timeout=1.0, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # the ephemeral port we got

    def release(self) -> None:
        """Let every hanging request return (with a 503, so the client sees a failure)."""
        self._release.set()

    async def stop(self) -> None:
        self._release.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # ------------------------------------------------------------------ handlers

    async def _tags(self, request: web.Request) -> web.Response:
        self.requests.append(("/api/tags", None))
        return web.json_response({"models": [{"name": self.model, "model": self.model,
                                              "size": 1, "digest": "0" * 64}]})

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        return await self._answer(request, "/api/chat", lambda text, model: {
            "model": model, "created_at": "2026-01-01T00:00:00Z",
            "message": {"role": "assistant", "content": text}, "done": True,
            "done_reason": "stop"})

    async def _generate(self, request: web.Request) -> web.StreamResponse:
        return await self._answer(request, "/api/generate", lambda text, model: {
            "model": model, "created_at": "2026-01-01T00:00:00Z", "response": text,
            "done": True, "done_reason": "stop"})

    async def _answer(self, request: web.Request, path: str, shape) -> web.StreamResponse:
        try:
            body = await request.json()
        except (ValueError, UnicodeDecodeError):
            body = {"_unparsed": await request.text()}
        self.requests.append((path, body))
        self.started_requests.set()
        mode = self.mode
        if mode == "hang":
            await self._release.wait()
            return web.Response(status=503, text="shutting down")
        if mode == "slow":
            try:
                await asyncio.wait_for(self._release.wait(), self.delay)
            except TimeoutError:
                pass
        if mode == "fail":
            return web.json_response({"error": "model runner crashed"}, status=500)
        if mode == "garbage":
            return web.Response(status=200, text="<html>definitely not json",
                                content_type="application/json")
        if mode == "wrong_shape":
            return web.Response(status=200, text=json.dumps(["not", "an", "object"]),
                                content_type="application/json")
        text = "" if mode == "empty" else (
            self.reply(body) if callable(self.reply) else self.reply)
        model = body.get("model", self.model) if isinstance(body, dict) else self.model
        return web.json_response(shape(text, model))
