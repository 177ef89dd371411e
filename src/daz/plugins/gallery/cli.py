"""``daz gallery …``: gallery tasks from the command line."""
from __future__ import annotations

import asyncio
from pathlib import Path

import click

from daz.cli_help import WholeHelpGroup


@click.group(cls=WholeHelpGroup)
def gallery() -> None:
    """The image gallery (pages are also served live at /gallery/<channel>)."""


@gallery.command("export")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--channel", "channels", multiple=True,
              help="Only this channel (repeatable; default: every channel with images).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Go Daz style config.json (for the database settings).")
@click.option("--dsn", help="PostgreSQL URL; default: DAZ_DATABASE_URL, the config, or the"
                            " embedded PostgreSQL.")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path),
              help="daz's data directory (where the embedded database lives).")
def export_command(directory: Path, channels: tuple[str, ...], config_path: Path | None,
                   dsn: str | None, data_dir: Path | None) -> None:
    """Write the gallery pages as static HTML files into DIRECTORY."""
    written = asyncio.run(_export(dsn, config_path, data_dir, directory,
                                  list(channels) or None))
    click.echo(f"wrote {len(written)} file(s) to {directory}")


async def _export(dsn: str | None, config_path: Path | None, data_dir: Path | None,
                  directory: Path, channels: list[str] | None) -> list[Path]:
    from daz.db.cli import database_url
    from daz.db.pool import Database
    from daz.plugins.gallery.export import export
    from daz.plugins.gallery.store import GalleryStore

    async with database_url(dsn, config_path, data_dir) as (url, timeout):
        db = Database(url, min_size=1, max_size=2, connect_timeout=timeout)
        try:
            await db.start()
        except Exception as exc:
            raise click.ClickException(f"cannot reach the database: {exc}") from None
        try:
            return await export(GalleryStore(db), directory, channels)
        finally:
            await db.close()
