"""engine.io's client with a leaner websocket reader: the socket layer's share of a chat flood.

python-engineio 4 reads every frame through ``asyncio.wait_for`` (which in Python 3.11 wraps the
read in a new task and arms a timer) and then hands every message to socket.io in yet another
new task. Under a chat flood those two tasks and a timer per frame were the largest single cost
of the bot's socket layer, and the bus got one event per loop turn, so every plugin lane woke
once per event. With this reader daz's CPU per chat event, end to end, fell from about 61 µs to
about 38 µs (``bench/bench_e2e_ingest.py``; docs/performance.md). This reader

* reads the websocket directly, without a timer per frame. engine.io's liveness rule is kept:
  when nothing at all has arrived for pingInterval + pingTimeout (CyTube: 25 s + 120 s; the
  server pings inside that window), the read is ended exactly as engine.io ends it on its own
  timeout. One timer, re-armed every ``_SILENCE_CHECKS``-th of that window, checks it;
* hands socket.io its messages inline, in arrival order, and reads the next frame only when the
  handler has returned. daz's handler (``Connection._frame`` through ``_GuardedClient``) catches
  its own errors and waits only to pace the reader when the room cannot publish fast enough
  (back-pressure: unread frames stay in TCP buffers and at the server, not in our memory); the
  silence rule does not count such a wait. A socket.io DISCONNECT packet is the exception:
  socket.io answers it by closing engine.io, which waits for this very read loop, so that one
  message still gets a task of its own (it is the last thing the server sends anyway).

Pings, the close handshake, the write loop and the connect sequence stay engine.io's own. This
relies on engine.io 4 internals (``_read_loop_websocket``, ``_receive_packet``, ``ws``,
``queue``, ``write_loop_task``, ``_reset``), hence the version bound in pyproject.toml; the
liveness, fault and fuzz tests under tests/e2e exercise every way out of the loop.

Every way out of the loop leaves ``end_reason`` (engine.io itself reports only "transport
error"): a frame over the size limit, the server's close code and reason, a read error, silence.
"""
from __future__ import annotations

import asyncio
import logging
import time

import aiohttp
import engineio
from engineio import base_client, packet

log = logging.getLogger(__name__)

_SILENCE_CHECKS = 8  # how often within one silence window the timer looks
_SOCKETIO_DISCONNECT = "1"  # socket.io DISCONNECT (any namespace) inside an engine.io message


class InlineFrameClient(engineio.AsyncClient):
    """``engineio.AsyncClient`` whose websocket reader works as the module docstring says."""

    _waiting_since = 0.0  # when the current wait for a frame began
    _silent = False
    _reading = False  # awaiting the websocket (not a handler)
    end_reason = ""  # why the read loop ended, in words (see the module docstring)

    async def _read_loop_websocket(self) -> None:
        loop = asyncio.get_running_loop()
        reader = asyncio.current_task()
        window = self.ping_interval + self.ping_timeout
        self._silent = False
        self.end_reason = ""
        self._waiting_since = time.monotonic()
        watch: asyncio.TimerHandle | None = None

        def check_silence() -> None:
            nonlocal watch
            # Only while waiting for the server: a handler pacing the reader (back-pressure)
            # is not the server's silence, and must not be cancelled.
            if self._reading and time.monotonic() - self._waiting_since > window:
                self._silent = True
                if reader is not None:
                    reader.cancel()
                return
            watch = loop.call_later(window / _SILENCE_CHECKS, check_silence)

        watch = loop.call_later(window / _SILENCE_CHECKS, check_silence)
        on_message = self.handlers.get("message")
        broken = False  # the loop ended on its own: tell the write loop to stop
        try:
            while self.state == "connected" and self.write_loop_task:
                self._reading = True
                self._waiting_since = time.monotonic()  # silence counts from here
                try:
                    message = await self.ws.receive()
                except asyncio.CancelledError:
                    if not self._silent:
                        raise
                    if reader is not None:
                        reader.uncancel()
                    self.end_reason = f"nothing from the server for {window:.0f} s"
                    log.warning("engine.io: %s; dropping the connection", self.end_reason)
                    broken = True
                    break
                except Exception as exc:  # aiohttp's end-of-stream and socket errors
                    self.end_reason = f"websocket read failed ({type(exc).__name__}: {exc})"
                    log.info("engine.io: %s; connection ends", self.end_reason)
                    broken = True
                    break
                finally:
                    self._reading = False
                data = message.data
                if not isinstance(data, (str, bytes)):  # close frame, error or closed stream
                    self.end_reason = websocket_end(message, self.ws)
                    # CLOSED also follows our own close: only the server's doing is a warning.
                    level = logging.INFO if message.type == aiohttp.WSMsgType.CLOSED \
                        else logging.WARNING
                    log.log(level, "engine.io: connection ends: %s", self.end_reason)
                    broken = True
                    break
                try:
                    pkt = packet.Packet(encoded_packet=data)
                except Exception as exc:
                    self.end_reason = f"undecodable engine.io frame ({exc})"
                    log.info("engine.io: %s; connection ends", self.end_reason)
                    broken = True
                    break
                if (pkt.packet_type == packet.MESSAGE and on_message is not None
                        and not (isinstance(pkt.data, str)
                                 and pkt.data.startswith(_SOCKETIO_DISCONNECT))):
                    try:
                        await on_message(pkt.data)
                    except Exception:  # as engine.io's task would: log it, keep reading
                        log.exception("engine.io: message handler failed")
                else:
                    await self._receive_packet(pkt)
        finally:
            if watch is not None:
                watch.cancel()
        if broken:
            await self.queue.put(None)
        await self._end_read_loop()

    async def _end_read_loop(self) -> None:
        """What engine.io does when its reader stops: wait for the writer, then, unless a
        disconnect is already under way, report a transport error and reset."""
        if self.write_loop_task:
            await self.write_loop_task
        if self.state == "connected":
            await self._trigger_event("disconnect", self.reason.TRANSPORT_ERROR,
                                      run_async=False)
            try:
                base_client.connected_clients.remove(self)
            except ValueError:
                pass
            await self._reset()


def websocket_end(message: aiohttp.WSMessage, ws: aiohttp.ClientWebSocketResponse | None) -> str:
    """What a non-data websocket message says about why the socket ends."""
    kind = message.type
    if kind == aiohttp.WSMsgType.ERROR:
        error = message.data
        code = getattr(error, "code", None)
        if code is None and ws is not None:
            code = ws.close_code
        return f"websocket error{_code_text(code)}: {error}"
    if kind == aiohttp.WSMsgType.CLOSE:
        extra = f": {message.extra}" if message.extra else ""
        return f"the server closed the websocket{_code_text(message.data)}{extra}"
    code = ws.close_code if ws is not None else None
    return f"the websocket closed{_code_text(code)}"


def _code_text(code: object) -> str:
    if not isinstance(code, int):
        return ""
    try:
        name = aiohttp.WSCloseCode(code).name.lower().replace("_", " ")
    except ValueError:
        return f" (code {code})"
    return f" (code {code}, {name})"
