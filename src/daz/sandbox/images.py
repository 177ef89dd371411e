"""The sandbox's own image host: ``daz sandbox`` needs pictures for its scripted users to post,
and must work with no internet. It serves a small PNG for any ``/img/<name>.png``, drawn from
the name (so each link shows its own picture), on loopback only.

The gallery refuses loopback addresses (its SSRF guard); ``daz sandbox`` names this server's
``host:port`` in the gallery's ``unsafe_allow_hosts``, the one explicit exception, for this
origin alone.
"""
from __future__ import annotations

import hashlib
import struct
import zlib

from aiohttp import web

from daz.sandbox.serve import serve

WIDTH, HEIGHT = 160, 120


def png(seed: str) -> bytes:
    """A WIDTH x HEIGHT RGB PNG: a diagonal blend between two colours taken from ``seed``."""
    digest = hashlib.sha256(seed.encode()).digest()
    start, end = digest[:3], digest[3:6]
    rows = []
    for y in range(HEIGHT):
        row = bytearray(b"\x00")  # filter type 0 for each scanline
        for x in range(WIDTH):
            mix = (x + y) / (WIDTH + HEIGHT - 2)
            row += bytes(round(a + (b - a) * mix) for a, b in zip(start, end, strict=True))
        rows.append(bytes(row))
    header = struct.pack(">IIBBBBB", WIDTH, HEIGHT, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header)
            + _chunk(b"IDAT", zlib.compress(b"".join(rows), 9)) + _chunk(b"IEND", b""))


def _chunk(kind: bytes, data: bytes) -> bytes:
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))


class SandboxImages:
    """``async with SandboxImages() as images: images.url("daz1")`` → a PNG link on loopback."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        self.host = host
        self.port = port
        self.served = 0
        self._cache: dict[str, bytes] = {}
        self._runner: web.AppRunner | None = None

    @property
    def origin(self) -> str:
        """``host:port``, as the gallery's ``unsafe_allow_hosts`` names it."""
        return f"{self.host}:{self.port}"

    def url(self, name: str) -> str:
        return f"http://{self.origin}/img/{name}.png"

    async def _image(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        body = self._cache.get(name)
        if body is None:
            if len(self._cache) >= 1000:
                self._cache.clear()
            body = self._cache[name] = png(name)
        self.served += 1
        return web.Response(body=body, content_type="image/png",
                            headers={"Cache-Control": "max-age=86400"})

    async def start(self) -> SandboxImages:
        app = web.Application()
        app.router.add_get(r"/img/{name:[\w-]{1,64}}.png", self._image)  # HEAD too
        self._runner, self.port = await serve(app, self.host, self.port)
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> SandboxImages:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
