"""``voicehost serve``: run the Twilio call server.

Start-up: :func:`voicehost.app.assembly.load_app_config` reads ``plugins.toml``
(``--config`` / ``$VOICEHOST_CONFIG`` / ``./plugins.toml``), loads the plugins and validates
every table — exactly what ``voicehost config check`` runs — then the app is built, the
providers' models are preloaded, and the server listens on ``--host``/``--port`` (default
127.0.0.1:8080) and prints the webhook URL to paste into Twilio.

Twilio credentials and the public URL:

* with no ``[twilio] auth_token`` (nor ``$TWILIO_AUTH_TOKEN``) the server still starts, so the
  offline default works on a fresh machine, but only on a loopback address, with webhook
  signature checks off and a warning; any other address is refused;
* with a token, signatures are checked against ``public_url`` (``--public-url``,
  ``$VOICEHOST_PUBLIC_URL`` or ``[server] public_url``), the URL Twilio reaches; listening on a
  non-loopback address without one is refused (signatures would be checked against a URL
  Twilio never used, so every webhook would get 403).

Shutdown: on SIGTERM or SIGINT the server stops accepting calls (webhooks and new streams get
503, ``/healthz`` 503), lets live calls run for ``[server] shutdown_grace_s`` seconds, then
ends the rest (stream closed 1001) and exits 0. A second signal ends the calls at once.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import sys
from collections.abc import Callable

import click
from aiohttp import web
from pydantic import ValidationError

from voicehost.app.assembly import (
    build_serve_app,
    load_app_config,
    preload_providers,
)
from voicehost.cli_options import config_option
from voicehost.errors import ConfigError, VoicehostError
from voicehost.server import SERVER_KEY, ServerSettings, TwilioSettings, make_runner
from voicehost.server.settings import is_loopback

log = logging.getLogger(__name__)

__all__ = ["check_bind", "resolve_public_url", "run_app", "serve"]

PUBLIC_URL_ENV = "VOICEHOST_PUBLIC_URL"


def check_bind(host: str, twilio: TwilioSettings, *, public_url_set: bool) -> None:
    """Refuse a bind that could not serve Twilio safely.

    Raises:
        ConfigError: no auth token on a non-loopback address, or a token on a non-loopback
            address with no public URL; the message says how to fix it.
    """
    if is_loopback(host):
        return
    if not twilio.auth_token:
        raise ConfigError(
            f"refusing to listen on {host}: no Twilio auth token is configured, so webhook "
            "signatures cannot be checked and anyone could place calls. Set TWILIO_AUTH_TOKEN "
            "(or [twilio] auth_token in plugins.toml), or listen on 127.0.0.1."
        )
    if not public_url_set:
        raise ConfigError(
            f"refusing to listen on {host} without a public URL: Twilio signs each webhook "
            "with the URL it requested, so voicehost must know it. Give --public-url "
            f"https://your.host (or ${PUBLIC_URL_ENV}, or [server] public_url in plugins.toml)."
        )


def resolve_public_url(
    server: ServerSettings, host: str, port: int, *, flag: str | None, explicit: bool
) -> ServerSettings:
    """``server`` with its ``public_url``: ``flag`` (``--public-url`` / ``$VOICEHOST_PUBLIC_URL``)
    when given, else ``[server] public_url`` when ``explicit``, else ``http://<host>:<port>``.

    Raises:
        ConfigError: ``flag`` is not an http(s) URL.
    """
    if flag:
        try:
            return server.with_public_url(flag)
        except ValidationError:
            raise ConfigError(f"--public-url must be an http(s) URL, not {flag!r}") from None
    if explicit:
        return server
    shown = "localhost" if host in ("0.0.0.0", "::") else host
    shown = f"[{shown}]" if ":" in shown else shown
    return server.with_public_url(f"http://{shown}:{port}")


async def run_app(
    app: web.Application,
    host: str,
    port: int,
    *,
    stop: asyncio.Event | None = None,
    ready: Callable[[int], None] | None = None,
) -> None:
    """Serve ``app`` until SIGTERM/SIGINT (or ``stop`` is set), then drain and exit.

    Args:
        stop: set it to shut down (tests); signals set it too.
        ready: called with the bound port once listening.
    """
    server = app[SERVER_KEY]
    stop = stop or asyncio.Event()
    force = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal() -> None:  # the first signal drains, a second one ends calls at once
        (force if stop.is_set() else stop).set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, on_signal)
        except (NotImplementedError, RuntimeError):  # not the main thread / not POSIX
            pass
    runner = make_runner(app, handle_signals=False, shutdown_timeout=5.0)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = runner.addresses[0][1] if runner.addresses else port
    if ready is not None:  # before the "listening" line, so what it prints comes first
        ready(bound)
    log.info("voicehost serve: listening on http://%s:%d", host, bound)
    click.echo(f"voicehost: listening on http://{host}:{bound}", err=True)
    try:
        await stop.wait()
        click.echo(
            f"voicehost: shutting down; {len(server.calls)} active calls get up to "
            f"{server.settings.shutdown_grace_s:g} s",
            err=True,
        )
        await server.drain(force=force)
    finally:
        await runner.cleanup()
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                loop.remove_signal_handler(sig)
            except (NotImplementedError, RuntimeError):
                pass
    click.echo("voicehost: stopped", err=True)


def _port_free(host: str, port: int) -> None:
    if port == 0:
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    default=8080,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Port (0: any free).",
)
@click.option(
    "--public-url",
    envvar=PUBLIC_URL_ENV,
    help=f"The https URL Twilio reaches (overrides [server] public_url) [env: {PUBLIC_URL_ENV}].",
)
@config_option
@click.option("-v", "--verbose", is_flag=True, help="Log at DEBUG level.")
def serve(
    host: str, port: int, public_url: str | None, config_path: str | None, verbose: bool
) -> None:
    """Run the Twilio call server (voice webhook, status callbacks, Media Streams)."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        config = load_app_config(config_path)
        explicit = "public_url" in config.server.model_fields_set
        check_bind(host, config.twilio, public_url_set=bool(public_url) or explicit)
        config = config.with_server(
            resolve_public_url(config.server, host, port, flag=public_url, explicit=explicit)
        )
        _port_free(host, port)
        app = build_serve_app(config)
        preload_providers(
            config.runtime, report=lambda line: click.echo(f"voicehost: {line}", err=True)
        )
    except VoicehostError as exc:
        raise click.ClickException(str(exc)) from exc
    if not config.twilio.auth_token:
        click.echo(
            "voicehost: WARNING: no Twilio auth token (TWILIO_AUTH_TOKEN / [twilio] "
            "auth_token): webhook signature checks are OFF; listening on loopback only.",
            err=True,
        )
    derived = not public_url and not explicit

    def bound(actual_port: int) -> None:
        server = app[SERVER_KEY]
        if derived:  # with --port 0 the URL handed to Twilio must name the port really bound
            server.settings = resolve_public_url(
                server.settings, host, actual_port, flag=None, explicit=False
            )
        click.echo(
            f"voicehost: Twilio voice webhook (POST): {server.settings.public_url}"
            f"{server.settings.webhook_path}",
            err=True,
        )

    asyncio.run(run_app(app, host, port, ready=bound))
