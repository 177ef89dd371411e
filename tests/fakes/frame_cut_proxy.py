"""A TcpProxy that can cut a websocket connection in the middle of a frame, the way a server
that dies while writing a big message leaves its clients: part of the frame arrived, then the
stream ends.

    proxy = await FrameCutProxy("127.0.0.1", server.port).start()
    cut = proxy.cut_mid_frame(min_payload=100_000)   # armed: the next frame this big is cut
    ...                                              # make the server send one
    info = await asyncio.wait_for(cut, 10)           # {"payload": 612345, "forwarded": 306172}

It follows the server → client half of every proxied connection: the HTTP response head, and
after a ``101 Switching Protocols`` the websocket frame headers (RFC 6455 §5.2), so it knows
where each frame starts and ends. The cut forwards the frame header and the first half of the
payload, flushes it to the client, then closes the client side (FIN, so those bytes are read
before the end) and aborts the server side. Other connections are untouched; the proxy keeps
accepting (``block()`` refuses new ones, as in TcpProxy).
"""
from __future__ import annotations

import asyncio

from tests.fakes.tcp_proxy import TcpProxy

MAX_HTTP_HEAD = 64 * 1024


def ws_header_size(head: bytes) -> int:
    """Bytes the frame header starting ``head`` needs (2 while that is not yet known)."""
    if len(head) < 2:
        return 2
    length7 = head[1] & 0x7F
    extended = 2 if length7 == 126 else 8 if length7 == 127 else 0
    return 2 + extended + (4 if head[1] & 0x80 else 0)


def ws_payload_length(head: bytes) -> int:
    length7 = head[1] & 0x7F
    if length7 == 126:
        return int.from_bytes(head[2:4], "big")
    if length7 == 127:
        return int.from_bytes(head[2:10], "big")
    return length7


class DownstreamTracker:
    """Frame boundaries in the server → client bytes of one connection."""

    def __init__(self, proxy: FrameCutProxy):
        self.proxy = proxy
        self.phase = "http"   # then "ws" after a 101, or "raw" for any other response
        self.head = b""       # an HTTP response head, or a frame header split across reads
        self.left = 0         # payload bytes of the current frame still to come
        self.pos = 0          # stream offset of the next byte fed
        self.cut_at: int | None = None  # stream offset where the armed cut falls
        self.cut_info: dict | None = None

    def feed(self, data: bytes) -> None:
        i, n = 0, len(data)
        while i < n and self.phase != "raw":
            if self.phase == "http":
                before = len(self.head)
                self.head += data[i:]
                end = self.head.find(b"\r\n\r\n")
                if end < 0:
                    if len(self.head) > MAX_HTTP_HEAD:
                        self.phase = "raw"
                    i = n
                    break
                status = self.head.split(b"\r\n", 1)[0]
                self.phase = "ws" if status.split(b" ")[1:2] == [b"101"] else "raw"
                i += end + 4 - before
                self.head = b""
            elif self.left:
                take = min(self.left, n - i)
                self.left -= take
                i += take
            else:
                need = ws_header_size(self.head)
                while len(self.head) < need and i < n:
                    take = min(need - len(self.head), n - i)
                    self.head += data[i:i + take]
                    i += take
                    need = ws_header_size(self.head)
                if len(self.head) < need:
                    break
                self.left = ws_payload_length(self.head)
                self.head = b""
                self._frame_started(self.pos + i, self.left)
        self.pos += n

    def _frame_started(self, payload_offset: int, length: int) -> None:
        armed = self.proxy.armed_min_payload
        if self.cut_at is None and armed is not None and length >= armed:
            self.proxy.armed_min_payload = None
            self.cut_at = payload_offset + length // 2
            self.cut_info = {"payload": length, "forwarded": length // 2}


class FrameCutProxy(TcpProxy):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.armed_min_payload: int | None = None
        self.cuts = 0
        self._cut: asyncio.Future | None = None

    def cut_mid_frame(self, min_payload: int) -> asyncio.Future:
        """Arm: the next server → client websocket frame with at least ``min_payload`` payload
        bytes is cut in its middle. The future gets {"payload", "forwarded"} when it happens."""
        self.armed_min_payload = min_payload
        self._cut = asyncio.get_running_loop().create_future()
        return self._cut

    def _pipes_for(self, reader, writer, up_reader, up_writer) -> tuple:
        return (self._pipe(reader, up_writer),
                self._downstream(up_reader, writer, up_writer, DownstreamTracker(self)))

    async def _downstream(self, src: asyncio.StreamReader, client: asyncio.StreamWriter,
                          upstream: asyncio.StreamWriter, tracker: DownstreamTracker) -> None:
        cut = False
        try:
            while data := await src.read(65536):
                if self.blocked:
                    break
                start = tracker.pos
                tracker.feed(data)
                if tracker.cut_at is not None and tracker.cut_at < start + len(data):
                    await self._cut_here(data[:tracker.cut_at - start], client, upstream,
                                         tracker.cut_info)
                    cut = True
                    return
                client.write(data)
                await client.drain()
        except (ConnectionError, asyncio.CancelledError, OSError):
            pass
        finally:
            if not cut:  # after a cut the client side is closing gracefully already
                client.transport.abort()
            self._writers.discard(client)

    async def _cut_here(self, last: bytes, client: asyncio.StreamWriter,
                        upstream: asyncio.StreamWriter, info: dict) -> None:
        upstream.transport.abort()  # the server side dies at once
        self._writers.discard(upstream)
        client.write(last)
        # Everything up to the cut must reach the client before its stream ends.
        while client.transport.get_write_buffer_size():
            await client.drain()
            await asyncio.sleep(0.001)
        client.close()
        self.cuts += 1
        if self._cut is not None and not self._cut.done():
            self._cut.set_result(info)
