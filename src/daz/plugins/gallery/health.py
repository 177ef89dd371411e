"""Health checks of collected images: are they still there, and still images?

One run takes the due active images and the due dead ones (see ``store.DUE_*``), checks them
with a few workers through the safe fetcher, and records each outcome through the SQL
functions of script 029:

* ok (2xx with an image Content-Type): an active image's failures are reset; a dead image is
  restored only if its owner has room under the limit, otherwise looked at again later;
* failed (4xx, network error, refused as unsafe, not an image, too many redirects): counted;
  the third failure in a row makes the image dead, with 3/6/12/24/48 h backoff; a stored URL
  that itself names an internal target (an address literal, a local name) is dead at once,
  without a request;
* server error (5xx) and blocked (401/403/429: hotlink protection, bot walls, rate limits,
  which keep the bot out while people still see the picture): counted apart with their own
  backoff (15 min doubling, at most 24 h), never killing the image and never retried every run.

Every check writes a health log row with the real HTTP status of the last answer (NULL when
nothing answered) and the time the requests took in ms (NULL when none was sent).

Runs never overlap: a second request waits for the one in progress.
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from daz.plugins.gallery.fetch import SafeFetcher
from daz.plugins.gallery.store import DueImage, GalleryStore

log = logging.getLogger(__name__)


@dataclass
class RunReport:
    checked: int = 0
    healthy: int = 0
    failed: int = 0
    server_errors: int = 0
    blocked: int = 0
    died: int = 0
    recovered: int = 0
    still_dead: int = 0
    errors: int = 0  # a check or its database write that raised
    reasons: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        return (f"{self.checked} checked: {self.healthy} ok, {self.failed} failed, "
                f"{self.server_errors} server errors, {self.blocked} blocked; "
                f"{self.died} died, "
                f"{self.recovered} recovered")


class HealthChecker:
    def __init__(self, store: GalleryStore, fetcher: SafeFetcher, *, max_images: int,
                 batch: int = 50, recovery_batch: int = 10, workers: int = 5,
                 recovery_days: int = 30):
        self.store = store
        self.fetcher = fetcher
        self.max_images = max_images
        self.batch = batch
        self.recovery_batch = recovery_batch
        self.workers = max(1, workers)
        self.recovery_days = recovery_days
        self._running = asyncio.Lock()
        self.last_report: RunReport | None = None

    async def run(self, *, force: bool = False, batch: int | None = None) -> RunReport:
        async with self._running:
            due = await self.store.due(batch or self.batch, self.recovery_batch, force=force,
                                       recovery_days=self.recovery_days)
            report = RunReport()
            queue: asyncio.Queue[DueImage] = asyncio.Queue()
            for image in due:
                queue.put_nowait(image)
            workers = [asyncio.create_task(self._worker(queue, report))
                       for _ in range(min(self.workers, len(due)))]
            try:
                await asyncio.gather(*workers)
            finally:
                for task in workers:
                    task.cancel()
            self.last_report = report
            if due:
                log.info("gallery health check: %s", report.summary())
            return report

    async def _worker(self, queue: asyncio.Queue, report: RunReport) -> None:
        while not queue.empty():
            image = queue.get_nowait()
            try:
                await self.check_one(image, report)
            except asyncio.CancelledError:
                raise
            except Exception:
                report.errors += 1
                log.exception("gallery: checking image %s failed", image.id)

    async def check_one(self, image: DueImage, report: RunReport) -> str:
        unsafe = self.fetcher.unsafe_by_name(image.url)
        if unsafe:
            # A row stored before these rules (by the Go bot, say) that names an internal
            # address: waiting for three failed checks would keep it on the gallery page as an
            # <img>, making every viewer's browser request that address meanwhile.
            report.checked += 1
            report.failed += 1
            report.reasons["unsafe URL"] = report.reasons.get("unsafe URL", 0) + 1
            if image.state == "active":
                report.died += 1
            await self.store.condemn(image.id, f"unsafe URL: {unsafe}")
            log.warning("gallery: image %s of %s names an internal target (%s); it is dead",
                        image.id, image.username, unsafe)
            return "failed"
        result = await self.fetcher.check_image(image.url)
        report.checked += 1
        answer = {"status": result.status, "response_ms": result.response_time_ms}
        if result.outcome == "ok":
            report.healthy += 1
            if image.state == "dead":
                if await self.store.restore(image.id, self.max_images, **answer):
                    report.recovered += 1
                    log.info("gallery: image %s of %s answers again and is back", image.id,
                             image.username)
                else:
                    report.still_dead += 1
            else:
                await self.store.mark_healthy(image.id, **answer)
        elif result.outcome in ("server_error", "blocked"):
            if result.outcome == "blocked":
                report.blocked += 1
            else:
                report.server_errors += 1
            await self.store.mark_server_error(image.id, result.status, result.reason,
                                               response_ms=result.response_time_ms)
        else:
            report.failed += 1
            key = result.reason.split(":")[0][:60]
            report.reasons[key] = report.reasons.get(key, 0) + 1
            state = await self.store.mark_failed(image.id, result.reason, **answer)
            if image.state == "active" and state == "dead":
                report.died += 1
                log.info("gallery: image %s of %s is dead: %s", image.id, image.username,
                         result.reason)
        return result.outcome
