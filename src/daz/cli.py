"""The ``daz`` command: run the bot, manage its database, try it in a sandbox."""
from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path

import click

from daz import __version__
from daz.cli_help import WholeHelpGroup
from daz.config import ConfigError, load_config
from daz.logs import LOG_FORMATS, setup_logging

log_format_option = click.option(
    "--log-format", type=click.Choice(LOG_FORMATS), default="text", show_default=True,
    envvar="DAZ_LOG_FORMAT",
    help="text for people; json: one object per line (time, level, room, plugin, message)"
         " for a log collector.")


def _event_loop_policy() -> None:
    try:
        import uvloop  # optional extra: faster socket handling
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


@click.group(cls=WholeHelpGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="daz")
def main() -> None:
    """daz: a modular chat bot for CyTube channels, with PostgreSQL as its memory."""


async def _check_then_run(app, check) -> None:
    """The pre-start checks, then the app; a signal during the checks stops daz cleanly too."""
    from daz.stopping import stop_on_signals

    with stop_on_signals(app.request_stop):
        checking = asyncio.ensure_future(check)
        stopping = asyncio.ensure_future(app.stop_requested.wait())
        await asyncio.wait({checking, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if not checking.done():
            checking.cancel()
            logging.getLogger("daz.app").info("start-up abandoned (checking the set-up)")
            return
        checking.result()
    await app.run_forever()


@main.command()
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Go Daz style config.json (optional when --channel is given).")
@click.option("--channel", help="Run one room on this channel, no config file needed.")
@click.option("--username", help="Bot account name (omit for a read-only anonymous bot).")
@click.option("--password", envvar="DAZ_CYTUBE_PASSWORD",
              help="Bot account password (visible to ps: prefer DAZ_CYTUBE_PASSWORD,"
                   " --password-file or the prompt).")
@click.option("--password-file", type=click.Path(dir_okay=False, path_type=Path),
              envvar="DAZ_CYTUBE_PASSWORD_FILE",
              help="Read the bot password from the first line of this file.")
@click.option("--server", help="CyTube server URL (default https://cytu.be).")
@click.option("--dsn", help="PostgreSQL URL; default: DAZ_DATABASE_URL, the config, "
                            "or an embedded PostgreSQL.")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Where daz keeps its embedded database and its journal.")
@click.option("--web-host", help="Listen address of the web server (default 127.0.0.1).")
@click.option("--web-port", type=int, help="Port of the web server (default 8080).")
@click.option("--nats", help="NATS server URL: bridge every room to Kryten clients "
                             "(default: DAZ_NATS_URL, core.nats.url).")
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
@log_format_option
def run(config_path, channel, username, password, password_file, server, dsn, data_dir,
        web_host, web_port, nats, verbose, log_format) -> None:
    """Connect to the configured rooms and run the plugins until interrupted.

    With a username and no password (flag, DAZ_CYTUBE_PASSWORD, --password-file or the config),
    daz asks for it when it runs on a terminal."""
    from daz.password_input import PasswordFileError, prompt_missing_passwords, read_password_file

    setup_logging(verbose, log_format)
    if password_file is not None and not password:
        try:
            password = read_password_file(password_file)
        except PasswordFileError as exc:
            raise click.ClickException(str(exc)) from None
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
    prompt_missing_passwords(config)
    from daz.app import App, default_data_dir
    from daz.db.migrate import MigrationError
    from daz.preflight import OperatorError, check_start

    _event_loop_policy()
    try:
        asyncio.run(_check_then_run(App(config, data_dir=data_dir, keep_heap=True), check_start(
            config, Path(config.core.data_dir or default_data_dir()))))
    except ConfigError as exc:
        raise click.ClickException(f"bad configuration: {exc}") from None
    except OperatorError as exc:
        raise click.ClickException(str(exc)) from None
    except MigrationError as exc:
        raise click.ClickException(f"the database could not be brought to daz's schema: {exc}"
                                   " (daz db migrate shows the same)") from None
    except KeyboardInterrupt:  # pragma: no cover - signal handler normally catches it
        pass


@main.command()
@click.option("--port", default=8765, show_default=True,
              help="Port of the fake CyTube server on 127.0.0.1 (0: any free port).")
@click.option("--channel", default="sandbox", show_default=True,
              help="Name of the fake channel the bot and the scripted users join.")
@click.option("--dsn", help="PostgreSQL URL; default: an embedded PostgreSQL in the data"
                            " directory.")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Where the sandbox keeps its embedded database, journal and web token"
                   " (default: the sandbox/ folder of daz's data directory).")
@click.option("--web-port", default=8080, show_default=True, type=int,
              help="Port of daz's web pages on 127.0.0.1 (0: any free port).")
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
@log_format_option
def sandbox(port, channel, dsn, data_dir, web_port, verbose, log_format) -> None:
    """Run daz against a local fake CyTube room with scripted users: no account needed."""
    setup_logging(verbose, log_format)
    from daz.preflight import OperatorError
    from daz.sandbox.runner import run_sandbox_bot

    try:
        asyncio.run(run_sandbox_bot(port=port, channel=channel, dsn=dsn, data_dir=data_dir,
                                    web_port=web_port))
    except OperatorError as exc:
        raise click.ClickException(str(exc)) from None
    except KeyboardInterrupt:
        pass


@main.command()
@click.argument("only", nargs=-1)
@click.option("--quick", is_flag=True,
              help="Small sizes: every benchmark in well under a minute (figures are noisier;"
                   " compare them only with other quick runs).")
@click.option("--dsn", envvar="DAZ_TEST_DSN",
              help="PostgreSQL server the benchmarks may create and drop daz_bench_* databases"
                   " in  [default: DAZ_TEST_DSN, else postgresql://root@127.0.0.1:5432/postgres]")
def bench(only, quick, dsn) -> None:
    """Run the benchmarks in bench/ (from a source checkout) and print one table. ONLY: run
    just the benchmarks whose file name contains one of these words (e.g. ingest)."""
    import os
    import subprocess

    script = Path.cwd() / "bench" / "run_all.py"
    if not script.exists():
        script = Path(__file__).resolve().parents[2] / "bench" / "run_all.py"
    if not script.exists():
        raise click.ClickException("bench/ not found: run daz bench from a daz source checkout")
    env = dict(os.environ)
    if dsn:
        env["DAZ_TEST_DSN"] = dsn
    args = [sys.executable, str(script), *only, *(["--quick"] if quick else [])]
    raise SystemExit(subprocess.call(args, env=env))


@main.group(cls=WholeHelpGroup)
def config() -> None:
    """The configuration file: every key, its type, default and meaning."""


@config.command("docs")
@click.option("--write", "write_to", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the page to this file (docs/config.md in a source checkout) instead "
                   "of printing it.")
@click.option("--check", "check_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Exit with an error when this file is not what would be written.")
@click.option("--installed", is_flag=True,
              help="Document installed third-party plugins too, not only the built-in ones.")
def config_docs(write_to, check_file, installed) -> None:
    """Print the config reference (docs/config.md), written from the settings models of the
    core and of every plugin, so it always matches the code."""
    from daz import configdoc

    problem, output = configdoc.produce(installed=installed, write=write_to,
                                        check_file=check_file)
    if problem:
        raise click.ClickException(problem)
    click.echo(output, nl=False)


def _register_optional_groups() -> None:
    """Sub-commands that live with the code they manage."""
    from daz.db.cli import db
    from daz.init_cmd import init
    from daz.status_cmd import status

    main.add_command(db)
    main.add_command(init)
    main.add_command(status)
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
