"""The one place the application is put together: plugins + config + call handler + records +
routes, for ``voicehost serve``, ``voicehost config check`` and ``voicehost simulate --local``.

:func:`load_app_config` is the whole start-up validation: it reads ``plugins.toml``, loads the
plugins, and checks every table (:func:`voicehost.config.check_config` with
:data:`CORE_TABLES`). ``config check`` runs exactly it; ``serve`` runs it, then
:func:`build_serve_app` and :func:`preload_providers`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

import attrs
from aiohttp import web

from voicehost.config import (
    CheckedConfig,
    RuntimeConfig,
    Settings,
    check_config,
    load_settings,
)
from voicehost.config_model import ConfigModel
from voicehost.conversation import ResponderCallHandler
from voicehost.errors import ConfigError, PluginError
from voicehost.plugins import PluginHost, load_plugin_host
from voicehost.records import CallStore
from voicehost.records.api import add_call_routes
from voicehost.records.settings import RecordsSettings
from voicehost.server import CallHandler, ServerSettings, TwilioSettings, build_app
from voicehost.server.dial_api import add_dial_route
from voicehost.server.handler import default_handler
from voicehost.server.rest import TwilioRest

__all__ = [
    "CORE_TABLES",
    "AppConfig",
    "build_serve_app",
    "create_handler",
    "load_app_config",
    "preload_providers",
]

#: The top-level tables of ``plugins.toml`` besides ``[plugins]`` and the provider kinds.
CORE_TABLES: Mapping[str, type[ConfigModel]] = {
    "server": ServerSettings,
    "twilio": TwilioSettings,
    "records": RecordsSettings,
}


@attrs.frozen
class AppConfig:
    """A validated configuration with its loaded plugins.

    Attributes:
        checked: the chosen providers with their parsed configs, and the parsed core tables.
        host: the loaded plugins.
    """

    checked: CheckedConfig
    host: PluginHost

    @property
    def settings(self) -> Settings:
        """The ``plugins.toml`` document."""
        return self.checked.runtime.settings

    @property
    def runtime(self) -> RuntimeConfig:
        """The chosen providers."""
        return self.checked.runtime

    @property
    def server(self) -> ServerSettings:
        """``[server]``."""
        return self.checked.table("server", ServerSettings)

    @property
    def twilio(self) -> TwilioSettings:
        """``[twilio]``."""
        return self.checked.table("twilio", TwilioSettings)

    @property
    def records(self) -> RecordsSettings:
        """``[records]``."""
        return self.checked.table("records", RecordsSettings)

    def with_server(self, server: ServerSettings) -> AppConfig:
        """A copy whose ``[server]`` settings are ``server`` (``serve --public-url``)."""
        tables = {**self.checked.tables, "server": server}
        return attrs.evolve(self, checked=attrs.evolve(self.checked, tables=tables))


def load_app_config(
    config_path: str | None = None,
    *,
    settings: Settings | None = None,
    host: PluginHost | None = None,
    environ: Mapping[str, str] | None = None,
) -> AppConfig:
    """Read ``plugins.toml`` (``settings`` when given), load the plugins it selects (``host``
    when given: plugins registered in-process, for tests and embedding) and validate every
    table: what ``serve`` does before it listens, and all ``config check`` does.

    Raises:
        ConfigError: every problem found, one line each (``problems``); a broken ``[plugins]``
            table or, in strict mode, a broken plugin is reported as one too.
    """
    settings = settings if settings is not None else load_settings(config_path)
    if host is None:
        try:
            host = load_plugin_host(settings, environ=environ)
        except PluginError as exc:
            raise ConfigError(str(exc)) from exc
    return AppConfig(check_config(settings, host, CORE_TABLES), host)


def create_handler(config: AppConfig) -> CallHandler:
    """The call handler ``serve`` uses: the chosen responder with call records
    (:class:`~voicehost.conversation.ResponderCallHandler`), or, with no responder chosen, one
    that says ``[server] greeting``. The responder's greeting replaces ``[server] greeting``.

    Raises:
        ConfigError: the responder refuses its config, or the records database cannot be
            opened.
    """
    choice = config.runtime.responder
    if choice is None:
        return default_handler(config.server.greeting)
    responder = choice.provider.create(choice.config)
    records = config.records
    store = CallStore(records.path) if records.enabled else None
    return ResponderCallHandler(responder, store)


def build_serve_app(
    config: AppConfig, *, handler_factory: Callable[[AppConfig], CallHandler] = create_handler
) -> web.Application:
    """The app ``serve`` (and ``simulate --local``) runs: the transport with the chosen STT
    and TTS providers, the handler, the ``GET /api/calls`` routes when records are kept,
    ``POST /api/calls`` (outbound calls), and the handler's clean-up (responder, record
    store) on app clean-up.

    Raises:
        ConfigError: as :func:`create_handler`.
    """
    handler = handler_factory(config)
    runtime = config.runtime
    rest = TwilioRest.from_settings(config.twilio)  # None without account SID and token
    app = build_app(
        config.server,
        twilio=config.twilio,
        stt=runtime.stt,
        tts=runtime.tts,
        handler=handler,
        rest=rest,
    )
    # POST /api/calls; calls and the route share one REST client, closed on app clean-up.
    add_dial_route(app, rest=rest, api_token=config.records.api_token)
    if isinstance(handler, ResponderCallHandler):
        if handler.store is not None:
            add_call_routes(app, handler.store.path, api_token=config.records.api_token)

        async def close(_app: web.Application) -> None:
            await handler.aclose()

        app.on_cleanup.append(close)
    return app


def preload_providers(runtime: RuntimeConfig, report: Callable[[str], None] | None = None) -> None:
    """Load the chosen STT and TTS providers' models before listening, so the first call's
    greeting does not wait for them (Whisper and Piper take 1-4 s to load).

    Args:
        runtime: the chosen providers.
        report: called with ``"<kind> provider <id> ready in N ms"`` for a preload of 100 ms
            or more.

    Raises:
        VoicehostError: a provider could not be prepared.
    """
    for choice in (runtime.stt, runtime.tts):
        if choice is None:
            continue
        started = time.monotonic()
        choice.provider.preload(choice.config)
        elapsed_ms = (time.monotonic() - started) * 1000
        if elapsed_ms >= 100 and report is not None:
            report(f"{choice.kind} provider {choice.id} ready in {elapsed_ms:.0f} ms")
