"""Starting an aiohttp app on a local port for the sandbox's servers (port 0: any free one)."""
from __future__ import annotations

from aiohttp import web


async def serve(app: web.Application, host: str, port: int, *,
                shutdown_timeout: float = 60.0) -> tuple[web.AppRunner, int]:
    """The app listening on ``host:port``: its runner (``cleanup()`` stops it) and the port."""
    runner = web.AppRunner(app, handle_signals=False, access_log=None,
                           shutdown_timeout=shutdown_timeout)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner, runner.addresses[0][1]
