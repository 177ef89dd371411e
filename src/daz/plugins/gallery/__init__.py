"""gallery: collects the images people link in chat into per-user galleries, checks that they
still exist, and shows them at ``/gallery/<channel>`` and ``/gallery/<channel>/<user>``.

Collecting: the first image link of a chat line (image extension, or a known image host matched
on the real host name) is stored with ``add_gallery_image``, at most one per user every
``rate_limit_seconds``, unless the user locked their gallery in that channel. Each user keeps at
most ``max_images_per_user`` active images across channels; the oldest is pruned (the reason
names the real limit), and re-posting a pruned or dead link brings that one back. A link whose
host does not resolve to public addresses is not collected.

Checking (``fetch.py``, ``health.py``): every ``health_check_interval`` the due images are
checked by HEAD (a ranged GET where HEAD is refused); the answer must be 2xx with an image
Content-Type. Three failures (404, 410, network errors, ...) make an image dead (shown in the
graveyard); 5xx and 401/403/429 answers (hotlink protection, bot walls) back off without
killing it; a dead image that answers again comes back if its owner has room. The health log
records each check's real HTTP status and response time. Nothing internal is ever fetched
(see ``fetch.py``).

Commands: ``!gallery`` (link to your gallery), ``!gallery_lock`` / ``!gallery_unlock`` (per
channel: a locked gallery is neither collected, shown nor checked), ``!gallery_check`` (admins:
check now and report). ``daz gallery export DIR`` writes the pages as static files.

Config: ``plugins.gallery`` in docs/config.md; ``unsafe_allow_hosts`` is the one exception to
the SSRF guard and stays empty in a real channel. Links use ``core.web.base_url`` (else the web
server's own address).
"""
from __future__ import annotations

import hashlib
import re
from typing import ClassVar
from urllib.parse import quote

from daz.commands import CommandContext, CommandRefused
from daz.cytube.events import ChatMessage
from daz.db.errors import is_transient
from daz.plugins.base import Example, Plugin, command, every, on
from daz.plugins.gallery import detect
from daz.plugins.gallery.fetch import FetchPolicy, Refused, SafeFetcher
from daz.plugins.gallery.health import HealthChecker
from daz.plugins.gallery.settings import GalleryConfig
from daz.plugins.gallery.store import GalleryStore

RATE_MEMORY = 10_000  # users remembered by the rate limit before old entries are dropped


class Gallery(Plugin[GalleryConfig]):
    name = "gallery"
    after = ("sql", "retry")
    description = "Galleries of the images linked in chat, with health checks"
    retry_operations: ClassVar[dict[str, str]] = {"add_image": "_retry_add_image"}

    async def setup(self) -> None:
        cfg = self.config
        self.fetcher = SafeFetcher(FetchPolicy(
            allowed_ports=tuple(cfg.allowed_ports),
            unsafe_allow_hosts=tuple(cfg.unsafe_allow_hosts),
            max_redirects=cfg.max_redirects, timeout=cfg.request_timeout))
        if cfg.unsafe_allow_hosts:
            self.log.warning("gallery: unsafe_allow_hosts is set (%s): these hosts are fetched "
                             "although they are not public (meant for daz sandbox and tests only)",
                             ", ".join(cfg.unsafe_allow_hosts))
        self.store = GalleryStore(self.ctx.db)
        self.health = HealthChecker(self.store, self.fetcher, max_images=cfg.max_images_per_user,
                                    batch=cfg.health_check_batch,
                                    recovery_batch=cfg.recovery_batch,
                                    workers=cfg.health_check_workers,
                                    recovery_days=cfg.recovery_days)
        self._last_collected: dict[str, float] = {}

    # ------------------------------------------------------------------ collecting

    @on(ChatMessage)
    async def chat(self, event: ChatMessage) -> None:
        cfg = self.config
        verdict = detect.first_image(event.text, event.msg, image_hosts=tuple(cfg.image_hosts),
                                     allowed_ports=tuple(cfg.allowed_ports),
                                     unsafe_allow=tuple(cfg.unsafe_allow_hosts))
        if verdict is None or not event.username:
            return
        key = event.username.lower()
        now = self.ctx.clock.monotonic()
        last = self._last_collected.get(key)
        if last is not None and now - last < cfg.rate_limit_seconds:
            self.log.debug("gallery: %s posts images too fast; %s not collected",
                           event.username, verdict.url[:100])
            return
        try:
            await self.fetcher.vet(verdict.url)
        except Refused as exc:
            self.log.info("gallery: not collecting %s from %s: %s", verdict.url[:100],
                          event.username, exc)
            return
        self._remember(key, now)
        payload = {"username": event.username, "url": verdict.url, "channel": event.channel}
        try:
            if await self.store.is_locked(event.username, event.channel):
                return
            await self.store.add_image(event.username, verdict.url, event.channel,
                                       cfg.max_images_per_user)
        except Exception as exc:
            if not is_transient(exc):
                raise
            self.log.warning("gallery: database unavailable (%s); image of %s queued for retry",
                             exc, event.username)
            identity = "\n".join((event.channel, event.username, verdict.url)).encode()
            await self.defer_retry("add_image", payload, error=str(exc)[:200],
                                   key="gallery:add:" + hashlib.sha256(identity).hexdigest()[:32])

    def _remember(self, key: str, now: float) -> None:
        if len(self._last_collected) >= RATE_MEMORY:
            horizon = now - self.config.rate_limit_seconds
            self._last_collected = {k: t for k, t in self._last_collected.items() if t > horizon}
        self._last_collected[key] = now

    async def _retry_add_image(self, payload: dict) -> None:
        if await self.store.is_locked(payload["username"], payload["channel"]):
            return
        await self.store.add_image(payload["username"], payload["url"], payload["channel"],
                                   self.config.max_images_per_user)

    # ------------------------------------------------------------------ health

    # The first run comes soon after start (within a minute), not a whole interval later.
    @every(config="health_check_interval", enabled_by="enable_health_check",
           initial_delay=lambda config: min(config.health_check_interval, 60.0))
    async def health_check(self) -> None:
        await self.health.run()

    # ------------------------------------------------------------------ commands

    def gallery_url(self, channel: str, username: str) -> str:
        web = self.ctx.app_config.core.web
        base = web.base_url.rstrip("/")
        if not base:
            base = f"http://{web.host}:{web.port}"
        return f"{base}/gallery/{quote(channel, safe='')}/{quote(username, safe='')}"

    @command("gallery", cooldown=5, usage="!gallery", description="Link to your image gallery",
             examples=[("!gallery", re.compile(r"alice's gallery: https?://\S+/gallery/testchan/"
                                               r"alice \(0 images here, 0 of \d+ in all\)"))])
    async def gallery(self, ctx: CommandContext) -> None:
        url = self.gallery_url(ctx.channel, ctx.username)
        everywhere, here = await self.store.counts(ctx.username, ctx.channel)
        locked = await self.store.is_locked(ctx.username, ctx.channel)
        text = f"{ctx.username}'s gallery: {url} ({here} image{'' if here == 1 else 's'} here"
        text += f", {everywhere} of {self.config.max_images_per_user} in all)"
        if locked:
            text += " [locked: not collecting or showing]"
        await ctx.reply(text)

    @command("gallery_lock", cooldown=5, usage="!gallery_lock",
             description="Stop collecting and hide your gallery in this channel",
             examples=[("!gallery_lock", "Your gallery in testchan is now locked: nothing is"
                                         " collected or shown.")])
    async def gallery_lock(self, ctx: CommandContext) -> None:
        await self._set_lock(ctx, True)

    @command("gallery_unlock", cooldown=5, usage="!gallery_unlock",
             description="Collect and show your gallery in this channel again",
             examples=[("!gallery_unlock", "Your gallery in testchan is now unlocked.")])
    async def gallery_unlock(self, ctx: CommandContext) -> None:
        await self._set_lock(ctx, False)

    async def _set_lock(self, ctx: CommandContext, locked: bool) -> None:
        await self.store.set_locked(ctx.username, ctx.channel, locked)
        await ctx.reply(f"Your gallery in {ctx.channel} is now "
                        f"{'locked: nothing is collected or shown' if locked else 'unlocked'}.")

    @command("gallery_check", admin_only=True, usage="!gallery_check",
             description="Check the gallery images now (admins)",
             examples=[Example("!gallery_check", "Gallery check started.", admin=True)])
    async def gallery_check(self, ctx: CommandContext) -> None:
        if not ctx.is_admin:  # the dispatcher refuses non-admins first; this is a second lock
            raise CommandRefused("!gallery_check is for bot admins only.")
        await ctx.reply("Gallery check started.")
        report = await self.health.run(force=True, batch=self.config.manual_check_batch)
        await ctx.reply(f"Gallery check: {report.summary()}.")

    # ------------------------------------------------------------------ web

    def web_routes(self) -> list:
        from daz.plugins.gallery.pages import routes

        return routes(self)
