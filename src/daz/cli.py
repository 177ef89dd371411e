"""The ``daz`` command: run the bot, manage its database, try it in a sandbox."""
from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path

import click

from daz import __version__
from daz.config import ConfigError, load_config


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        datefmt="%Y-%m-%dT%H:%M:%S",
    )
    # socket.io/engine.io log every packet at INFO; that is noise for a channel owner.
    for noisy in ("socketio", "engineio", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _event_loop_policy() -> None:
    try:
        import uvloop  # optional extra: faster socket handling
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="daz")
def main() -> None:
    """daz: a modular chat bot for CyTube channels, with PostgreSQL as its memory."""


@main.command()
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Go Daz style config.json (optional when --channel is given).")
@click.option("--channel", help="Run one room on this channel, no config file needed.")
@click.option("--username", help="Bot account name (omit for a read-only anonymous bot).")
@click.option("--password", envvar="DAZ_CYTUBE_PASSWORD", help="Bot account password.")
@click.option("--server", help="CyTube server URL (default https://cytu.be).")
@click.option("--dsn", help="PostgreSQL URL; default: DAZ_DATABASE_URL, the config, "
                            "or an embedded PostgreSQL.")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Where daz keeps its embedded database and spill files.")
@click.option("--web-host", help="Listen address of the web server (default 127.0.0.1).")
@click.option("--web-port", type=int, help="Port of the web server (default 8080).")
@click.option("--nats", help="NATS server URL: bridge every room to Kryten clients "
                             "(default: DAZ_NATS_URL, core.nats.url).")
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
def run(config_path, channel, username, password, server, dsn, data_dir, web_host, web_port,
        nats, verbose) -> None:
    """Connect to the configured rooms and run the plugins until interrupted."""
    _setup_logging(verbose)
    overrides = dict(channel=channel, username=username, password=password, server=server,
                     dsn=dsn, data_dir=data_dir, web_host=web_host, web_port=web_port,
                     nats=nats)
    try:
        config = load_config(config_path, overrides=overrides)
    except ConfigError as exc:
        raise click.ClickException(f"bad configuration: {exc}") from None
    if not config.enabled_rooms:
        raise click.ClickException(
            "no enabled room: give --channel (and --username/--password), or a config file "
            "with core.rooms[] entries that have \"enabled\": true")
    from daz.app import App

    _event_loop_policy()
    try:
        asyncio.run(App(config, data_dir=data_dir).run_forever())
    except ConfigError as exc:
        raise click.ClickException(f"bad configuration: {exc}") from None
    except KeyboardInterrupt:  # pragma: no cover - signal handler normally catches it
        pass


@main.command()
@click.option("--port", default=8765, show_default=True, help="Port of the fake CyTube server.")
@click.option("--channel", default="sandbox", show_default=True)
@click.option("--dsn", help="PostgreSQL URL (default: embedded).")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--web-port", default=8080, show_default=True, type=int)
@click.option("-v", "--verbose", is_flag=True)
def sandbox(port, channel, dsn, data_dir, web_port, verbose) -> None:
    """Run daz against a local fake CyTube room with scripted users: no account needed."""
    _setup_logging(verbose)
    from daz.sandbox.runner import run_sandbox_bot

    try:
        asyncio.run(run_sandbox_bot(port=port, channel=channel, dsn=dsn, data_dir=data_dir,
                                    web_port=web_port))
    except KeyboardInterrupt:
        pass


@main.command(context_settings={"ignore_unknown_options": True})
@click.argument("only", nargs=-1)
def bench(only) -> None:
    """Run the benchmarks in bench/ (from a source checkout) and print one table."""
    import subprocess

    script = Path.cwd() / "bench" / "run_all.py"
    if not script.exists():
        script = Path(__file__).resolve().parents[2] / "bench" / "run_all.py"
    if not script.exists():
        raise click.ClickException("bench/ not found: run daz bench from a daz source checkout")
    raise SystemExit(subprocess.call([sys.executable, str(script), *only]))


def _register_optional_groups() -> None:
    """Sub-commands that live with the code they manage."""
    from daz.db.cli import db

    main.add_command(db)
    try:
        from daz.plugins.gallery.cli import gallery
    except ImportError:
        return
    main.add_command(gallery)


try:
    _register_optional_groups()
except ImportError as exc:  # pragma: no cover - only while a sub-package is missing
    print(f"daz: some commands are unavailable: {exc}", file=sys.stderr)


if __name__ == "__main__":  # pragma: no cover
    main()
