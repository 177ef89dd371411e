"""``daz gallery …``: gallery tasks from the command line."""
from __future__ import annotations

import asyncio
from pathlib import Path

import click


@click.group()
def gallery() -> None:
    """The image gallery (pages are also served live at /gallery/<channel>)."""


@gallery.command("export")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--channel", "channels", multiple=True,
              help="Only this channel (repeatable; default: every channel with images).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Go Daz style config.json (for the database settings).")
@click.option("--dsn", help="PostgreSQL URL (default: DAZ_DATABASE_URL or the config).")
def export_command(directory: Path, channels: tuple[str, ...], config_path: Path | None,
                   dsn: str | None) -> None:
    """Write the gallery pages as static HTML files into DIRECTORY."""
    from daz.config import ConfigError, load_config

    try:
        config = load_config(config_path, overrides={"dsn": dsn})
    except ConfigError as exc:
        raise click.ClickException(f"bad configuration: {exc}") from None
    url = config.core.database.url()
    if not url:
        raise click.ClickException("no database: give --dsn, DAZ_DATABASE_URL or a config file")
    written = asyncio.run(_export(url, directory, list(channels) or None))
    click.echo(f"wrote {len(written)} file(s) to {directory}")


async def _export(dsn: str, directory: Path, channels: list[str] | None) -> list[Path]:
    from daz.db.pool import Database
    from daz.plugins.gallery.export import export
    from daz.plugins.gallery.store import GalleryStore

    db = Database(dsn, min_size=1, max_size=2)
    try:
        await db.start()
    except Exception as exc:
        raise click.ClickException(f"cannot reach the database: {exc}") from None
    try:
        return await export(GalleryStore(db), directory, channels)
    finally:
        await db.close()
