"""``voicehost serve``: run the Twilio call server.

Start-up: read ``plugins.toml`` (``--config`` / ``$VOICEHOST_CONFIG`` / ``./plugins.toml``),
load the plugins, choose the STT and TTS providers with their config blobs, build the app and
listen on ``--host``/``--port`` (default 127.0.0.1:8080).

Twilio credentials: with no ``[twilio] auth_token`` (nor ``$TWILIO_AUTH_TOKEN``) the server
still starts, so the offline default works on a fresh machine, but only on a loopback address,
with webhook signature checks off and a warning; binding any other address without a token is
refused with a clear message.

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
import time
from collections.abc import Callable

import attrs
import click
from aiohttp import web

from voicehost.cli_options import config_option
from voicehost.config import RuntimeConfig, load_settings, resolve_providers
from voicehost.conversation import build_call_handler
from voicehost.errors import ConfigError, VoicehostError
from voicehost.plugins import load_plugin_host
from voicehost.server.app import SERVER_KEY, build_app
from voicehost.server.handler import CallHandler
from voicehost.server.settings import ServerSettings, is_loopback

log = logging.getLogger(__name__)

__all__ = [
    "build_serve_app",
    "check_bind",
    "create_handler",
    "preload_providers",
    "run_app",
    "serve",
]


def check_bind(host: str, settings: ServerSettings) -> None:
    """Refuse a non-loopback bind without a Twilio auth token.

    Raises:
        ConfigError: saying how to fix it.
    """
    if settings.auth_token or is_loopback(host):
        return
    raise ConfigError(
        f"refusing to listen on {host}: no Twilio auth token is configured, so webhook "
        "signatures cannot be checked and anyone could place calls. Set TWILIO_AUTH_TOKEN "
        "(or [twilio] auth_token in plugins.toml), or listen on 127.0.0.1."
    )


def create_handler(runtime: RuntimeConfig, settings: ServerSettings) -> CallHandler:
    """The call handler ``voicehost serve`` uses:
    :func:`voicehost.conversation.build_call_handler` (the chosen responder, else one that
    says ``[server] greeting``). A handler with an ``attach(app)`` method wants it called
    with the app before the server starts (:func:`build_serve_app` does).

    Raises:
        ConfigError: the responder's or the call records' configuration is wrong.
    """
    return build_call_handler(runtime, settings)


def build_serve_app(runtime: RuntimeConfig, settings: ServerSettings) -> web.Application:
    """The app ``voicehost serve`` (and ``voicehost simulate --local``) runs: the chosen STT
    and TTS providers with :func:`create_handler`'s handler, whose ``attach(app)`` adds the
    ``/api/calls`` routes and the handler's cleanup.

    Raises:
        ConfigError: the responder's or the call records' configuration is wrong.
    """
    handler = create_handler(runtime, settings)
    app = build_app(settings, stt=runtime.stt, tts=runtime.tts, handler=handler)
    attach = getattr(handler, "attach", None)  # the responder handler's routes and cleanup
    if attach is not None:
        attach(app)
    return app


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
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=5.0)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = runner.addresses[0][1] if runner.addresses else port
    log.info("voicehost serve: listening on http://%s:%d", host, bound)
    click.echo(f"voicehost: listening on http://{host}:{bound}", err=True)
    if ready is not None:
        ready(bound)
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


def preload_providers(runtime: RuntimeConfig) -> None:
    """Load the chosen STT and TTS providers' models before listening, so the first call's
    greeting does not wait for them (Whisper and Piper take 1-4 s to load).

    Raises:
        VoicehostError: a provider could not be prepared.
    """
    for choice in (runtime.stt, runtime.tts):
        if choice is None:
            continue
        started = time.monotonic()
        choice.provider.preload(choice.config)
        elapsed_ms = (time.monotonic() - started) * 1000
        if elapsed_ms >= 100:
            click.echo(
                f"voicehost: {choice.kind} provider {choice.id} ready in {elapsed_ms:.0f} ms",
                err=True,
            )


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
@click.option("--port", default=8080, show_default=True, type=int, help="Port (0: any free).")
@config_option
@click.option("-v", "--verbose", is_flag=True, help="Log at DEBUG level.")
def serve(host: str, port: int, config_path: str | None, verbose: bool) -> None:
    """Run the Twilio call server (voice webhook, status callbacks, Media Streams)."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        config = load_settings(config_path)
        settings = ServerSettings.from_tables(config.table("server"), config.table("twilio"))
        derive_public_url = "public_url" not in config.raw_table("server")
        shown = "localhost" if host in ("0.0.0.0", "::") else host
        shown = f"[{shown}]" if ":" in shown else shown
        if derive_public_url:
            settings = _with_public_url(settings, f"http://{shown}:{port}")
        check_bind(host, settings)
        host_plugins = load_plugin_host(config)
        runtime = resolve_providers(config, host_plugins)
        _port_free(host, port)
        app = build_serve_app(runtime, settings)
        preload_providers(runtime)
    except VoicehostError as exc:
        raise click.ClickException(str(exc)) from exc
    if not settings.auth_token:
        click.echo(
            "voicehost: WARNING: no Twilio auth token (TWILIO_AUTH_TOKEN / [twilio] "
            "auth_token): webhook signature checks are OFF; listening on loopback only.",
            err=True,
        )

    def bound(actual_port: int) -> None:
        # With --port 0 the URL handed to Twilio must name the port really bound.
        if derive_public_url:
            server = app[SERVER_KEY]
            server.settings = _with_public_url(server.settings, f"http://{shown}:{actual_port}")

    asyncio.run(run_app(app, host, port, ready=bound))


def _with_public_url(settings: ServerSettings, url: str) -> ServerSettings:
    return attrs.evolve(settings, public_url=url)
