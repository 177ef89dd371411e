"""Write the gallery pages as static files (for any static host).

Layout under the target directory::

    index.html                      the channels
    assets/daz.css, gallery.css
    <channel>/index.html            everyone's gallery in that channel
    <channel>/<user>.html           one person's

Channel and user names become file names through ``pages.slug`` (names that are not plain
``[A-Za-z0-9_-]`` get a hash suffix), so a hostile name can never leave the directory.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from urllib.parse import quote

from daz.plugins.gallery.pages import EXPORT_PAGE_SIZE, STATIC, gallery_context, render, slug
from daz.plugins.gallery.store import GalleryStore

EXPORT_CSP = ("default-src 'none'; img-src http: https:; style-src 'self'; script-src 'none'; "
              "object-src 'none'; base-uri 'none'; form-action 'none'")


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


async def export(store: GalleryStore, target: Path,
                 channels: list[str] | None = None) -> list[Path]:
    """Write the pages; returns the files written."""
    target = Path(target)
    assets = target / "assets"
    assets.mkdir(parents=True, exist_ok=True)
    from daz.web.pages import STATIC_DIR

    shutil.copyfile(STATIC_DIR / "daz.css", assets / "daz.css")
    shutil.copyfile(STATIC / "gallery.css", assets / "gallery.css")
    channels = channels if channels is not None else await store.channels()
    written: list[Path] = []
    links = [(channel, f"../{quote(slug(channel))}/index.html") for channel in channels]
    for channel in channels:
        folder = target / slug(channel)
        folder.mkdir(parents=True, exist_ok=True)
        common = dict(csp=EXPORT_CSP, assets="../assets/", channel_links=links)
        context = await gallery_context(store, channel, None,
                                        user_link=lambda name: f"{quote(slug(name))}.html",
                                        per_page=EXPORT_PAGE_SIZE)
        _write(folder / "index.html", render("gallery_export.html", **common, **context))
        written.append(folder / "index.html")
        for user in await store.users(channel):
            context = await gallery_context(store, channel, user, user_link=lambda name: "",
                                            back_link="index.html", per_page=EXPORT_PAGE_SIZE)
            path = folder / f"{slug(user)}.html"
            _write(path, render("gallery_export.html", **common, **context))
            written.append(path)
    top = [(channel, f"{quote(slug(channel))}/index.html") for channel in channels]
    _write(target / "index.html", render(
        "gallery_export.html", csp=EXPORT_CSP, assets="assets/", channel_links=top,
        title="Galleries", index_only=True))
    written.append(target / "index.html")
    return written
