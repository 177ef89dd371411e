"""How daz stops: one stop request from SIGINT/SIGTERM, and one time budget for the whole stop.

Signals. python-socketio and python-engineio install a SIGINT handler of their own on the first
client (``handle_sigint=True`` by default) that disconnects, cancels *every* task and stops the
event loop: Ctrl-C then ended ``daz run`` with "Event loop stopped before Future completed" and
nothing queued written. daz's clients pass ``handle_sigint=False``, and ``stop_on_signals``
also marks engine.io's handler as installed so no other client (a plugin's) can put it back.
Both signals call one ``request_stop(signal name)``; what it does is the app's business.

Budget. ``StopBudget`` is the time the whole stop may take (``core.stop_timeout_seconds``, 8 s
by default: under Docker's 10 s between SIGTERM and SIGKILL). Each step runs ``within()`` a
share of what is left, and is cancelled when its time is up, so a stuck plugin costs its share
and no more; the last ``reserve`` seconds are kept for saving what is still in memory to disk.
A second signal while stopping (``hurry()``) ends every step that is still waiting within
``HURRY_SECONDS``: the stop goes straight to saving and exits.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

log = logging.getLogger(__name__)

HURRY_SECONDS = 1.5  # what is left of the budget after a second signal
RESERVE_SHARE = 0.25  # of the budget, kept for saving to disk at the end (at most 2 s)
CANCEL_GRACE = 0.2  # how long a step that ran out of time gets to finish being cancelled


def neutralise_socketio_sigint() -> None:
    """Keep engine.io from installing its cancel-everything SIGINT handler on a later connect."""
    try:
        import engineio.async_client
    except ImportError:  # pragma: no cover - socket.io is a dependency
        return
    engineio.async_client.async_signal_handler_set = True


@contextlib.contextmanager
def stop_on_signals(request_stop: Callable[[str], None]) -> Iterator[None]:
    """While inside, SIGINT and SIGTERM call ``request_stop(name)`` on the running loop."""
    loop = asyncio.get_running_loop()
    neutralise_socketio_sigint()
    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, request_stop, sig.name)
        except (NotImplementedError, RuntimeError, ValueError):  # pragma: no cover - non-Unix
            continue
        installed.append(sig)
    try:
        yield
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


class StopBudget:
    """The time left for stopping, shared by every step of the stop."""

    def __init__(self, seconds: float) -> None:
        self.seconds = max(0.0, seconds)
        self._loop = asyncio.get_running_loop()
        self.started = self._loop.time()
        self.deadline = self.started + self.seconds
        self.reserve = min(2.0, self.seconds * RESERVE_SHARE)
        self._hurried = asyncio.Event()
        self.overrun: list[str] = []  # steps cancelled because their time was up

    @property
    def elapsed(self) -> float:
        return self._loop.time() - self.started

    def left(self, *, keep_reserve: bool = True) -> float:
        end = self.deadline - (self.reserve if keep_reserve else 0.0)
        return max(0.0, end - self._loop.time())

    @property
    def hurried(self) -> bool:
        return self._hurried.is_set()

    def hurry(self) -> None:
        """A second stop request: whatever is still waiting ends now, then save and exit."""
        self.deadline = min(self.deadline, self._loop.time() + HURRY_SECONDS)
        self.reserve = min(self.reserve, HURRY_SECONDS)
        self._hurried.set()

    async def within(self, step: Awaitable[Any], what: str, *, at_most: float | None = None,
                     keep_reserve: bool = True) -> bool:
        """Run ``step`` for at most ``at_most`` seconds and never past the budget (less the
        reserve, unless ``keep_reserve`` is off); cancel it when its time is up. True when it
        finished in time (its exception, if any, is logged, never raised)."""
        limit = self.left(keep_reserve=keep_reserve)
        if at_most is not None:
            limit = min(limit, at_most)
        if limit <= 0:
            if asyncio.iscoroutine(step):
                step.close()
            self.overrun.append(what)
            log.warning("stopping: no time left for %s", what)
            return False
        task = asyncio.ensure_future(step)
        hurried = asyncio.ensure_future(self._hurried.wait())
        try:
            await asyncio.wait({task, hurried}, timeout=limit,
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            hurried.cancel()
        if not task.done() and self.hurried:  # the rest of the (short) budget, then cut
            await asyncio.wait({task}, timeout=self.left(keep_reserve=keep_reserve))
        if task.done():
            if not task.cancelled() and task.exception() is not None:
                exc = task.exception()
                log.warning("stopping: %s failed: %s: %s", what, type(exc).__name__, exc)
            return True
        task.cancel()
        task.add_done_callback(_retrieve)  # it may end after we stopped watching
        await asyncio.wait({task}, timeout=max(0.01, min(CANCEL_GRACE,
                                                         self.left(keep_reserve=False))))
        self.overrun.append(what)
        log.warning("stopping: %s did not finish within its share of the %.0fs stop budget;"
                    " cut short", what, self.seconds)
        return False


def _retrieve(task: asyncio.Future) -> None:
    if not task.cancelled():
        task.exception()
