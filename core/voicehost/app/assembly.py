"""The one place the application is put together: plugins + config + call handler + records +
routes, for ``voicehost serve``, ``voicehost config check`` and ``voicehost simulate --local``.

:func:`load_app_config` is the whole start-up validation: it reads ``plugins.toml``, loads the
plugins, and checks every table (:func:`voicehost.config.check_config` with
:data:`CORE_TABLES`). ``config check`` runs exactly it; ``serve`` runs it, then
:func:`build_serve_app` and :func:`preload_providers`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping

import attrs
from aiohttp import web

from voicehost.app.monitor import MonitorHub
from voicehost.app.monitor_handler import MonitoringHandler
from voicehost.app.monitor_routes import add_monitor_routes
from voicehost.config import (
    CheckedConfig,
    RuntimeConfig,
    Settings,
    check_config,
    load_settings,
)
from voicehost.config_model import ConfigModel
from voicehost.contracts import Responder
from voicehost.conversation import ResponderCallHandler
from voicehost.conversation_log import TurnObserver
from voicehost.errors import ConfigError, PluginError
from voicehost.plugins import PluginHost, load_plugin_host
from voicehost.records.api import add_call_routes
from voicehost.records.settings import RecordsSettings, open_store
from voicehost.server import (
    CallHandler,
    ObservabilitySettings,
    ServerSettings,
    TwilioSettings,
    build_app,
)
from voicehost.server.dial_api import add_dial_route
from voicehost.server.handler import default_handler
from voicehost.server.rest import TwilioRest
from voicehost.server.shared_state import attach_shared_state
from voicehost.server.state_settings import StateSettings
from voicehost.speech_to_speech import CallTools, SpeechToSpeechCallHandler
from voicehost.tracing import start_tracing

log = logging.getLogger(__name__)

__all__ = [
    "CORE_TABLES",
    "AppConfig",
    "build_serve_app",
    "create_handler",
    "load_app_config",
    "make_responder",
    "preload_providers",
]

#: The top-level tables of ``plugins.toml`` besides ``[plugins]`` and the provider kinds.
CORE_TABLES: Mapping[str, type[ConfigModel]] = {
    "server": ServerSettings,
    "twilio": TwilioSettings,
    "records": RecordsSettings,
    "observability": ObservabilitySettings,
    "state": StateSettings,
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

    @property
    def observability(self) -> ObservabilitySettings:
        """``[observability]``."""
        return self.checked.table("observability", ObservabilitySettings)

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
    config = AppConfig(check_config(settings, host, CORE_TABLES), host)
    try:
        make_responder(config)  # the responder's own checks (its tools), as serve makes it
    except ConfigError as exc:
        raise ConfigError(f"{settings.where}: {exc}") from exc
    conversation = config.runtime.conversation
    if conversation is not None:
        try:  # the conversation's tools, as serve makes them
            CallTools(conversation.config, config.host.tools)
        except ConfigError as exc:
            where = f"{settings.where}: [conversation.{conversation.id}]"
            problems = [f"{where} {problem}" for problem in exc.problems]
            raise ConfigError("\n".join(problems), problems=problems) from exc
    return config


def make_responder(config: AppConfig) -> Responder | None:
    """The chosen responder, made from its parsed config and handed every tool the plugins
    registered (``Responder.use_tools``); None when no responder is chosen. Making one opens
    nothing (responders connect on first use), so :func:`load_app_config` makes one to run
    its checks, exactly as ``serve`` will.

    Raises:
        ConfigError: the responder refuses its config or the tools (a configured tool no
            plugin registered).
    """
    choice = config.runtime.responder
    if choice is None:
        return None
    responder = choice.provider.create(choice.config)
    responder.use_tools(dict(config.host.tools))
    return responder


def create_handler(config: AppConfig) -> CallHandler:
    """The call handler ``serve`` uses: with ``[conversation] provider`` set, a
    :class:`~voicehost.speech_to_speech.SpeechToSpeechCallHandler` on it (with records);
    else the chosen responder with call records
    (:class:`~voicehost.conversation.ResponderCallHandler`), or, with no responder chosen, one
    that says ``[server] greeting``. The responder's greeting replaces ``[server] greeting``.
    The responder is handed every tool the plugins registered (``Responder.use_tools``) right
    after it is made. With ``[observability] traces`` on, the handler writes the calls'
    spans (:func:`voicehost.tracing.start_tracing`).

    Raises:
        ConfigError: the responder refuses its config or the tools (a configured tool no
            plugin registered), the records database cannot be opened, or traces are on
            without OpenTelemetry installed.
    """
    conversation = config.runtime.conversation
    if conversation is not None:
        store = open_store(config.records) if config.records.enabled else None
        return SpeechToSpeechCallHandler(
            conversation.provider, conversation.config, config.host.tools, store
        )
    responder = make_responder(config)
    choice = config.runtime.responder
    if responder is None or choice is None:
        return default_handler(config.server.greeting)
    obs = config.observability
    tracing = None
    if obs.traces:
        tracing = start_tracing(service_name=obs.service_name, otlp_endpoint=obs.otlp_endpoint)
    records = config.records
    try:
        store = open_store(records) if records.enabled else None
    except ConfigError:
        if tracing is not None:
            tracing.shutdown()
        raise
    return ResponderCallHandler(responder, store, responder_id=choice.provider.id, tracing=tracing)


def build_serve_app(
    config: AppConfig, *, handler_factory: Callable[[AppConfig], CallHandler] = create_handler
) -> web.Application:
    """The app ``serve`` (and ``simulate --local``) runs: the transport with the chosen STT
    and TTS providers and end-of-turn detector, the handler, ``GET /metrics`` (unless
    ``[observability] metrics`` is off), the ``GET /api/calls`` routes when records are kept,
    ``POST /api/calls`` (outbound calls), the live call monitor (``/monitor``,
    :mod:`voicehost.app.monitor_routes`; the handler is wrapped in a
    :class:`~voicehost.app.monitor_handler.MonitoringHandler`, the hub is at
    ``app[MONITOR_HUB_KEY]``), and the handler's clean-up (responder, record store) on app
    clean-up.

    Raises:
        ConfigError: as :func:`create_handler`.
    """
    handler = handler_factory(config)
    runtime = config.runtime
    rest = TwilioRest.from_settings(config.twilio)  # None without account SID and token
    hub = MonitorHub()  # /monitor: fed by every callback of the handler
    app = build_app(
        config.server,
        twilio=config.twilio,
        stt=runtime.stt,
        tts=runtime.tts,
        turn=runtime.turn,  # [turn]: finals held until the turn is complete
        handler=MonitoringHandler(handler, hub),
        rest=rest,
        observability=config.observability,
        api_token=config.records.api_token,  # GET /metrics: the /api/calls access rule
    )
    # POST /api/calls; calls and the route share one REST client, closed on app clean-up.
    add_dial_route(app, rest=rest, api_token=config.records.api_token)
    add_monitor_routes(app, hub, api_token=config.records.api_token)
    # [state]: Redis shared with the other instances (ConfigError when unreachable)
    state = config.checked.table("state", StateSettings)
    attach_shared_state(app, state, api_token=config.records.api_token)
    if isinstance(handler, ResponderCallHandler | SpeechToSpeechCallHandler):
        handler.turn_observers.append(_monitor_observer(hub, handler))
        if handler.store is not None:
            add_call_routes(app, handler.store.path, api_token=config.records.api_token)

        async def close(_app: web.Application) -> None:
            await handler.aclose()

        app.on_cleanup.append(close)

    async def close_providers(_app: web.Application) -> None:
        """The providers' own clients (an optional ``aclose``: SDK connection pools)."""
        for choice in runtime.chosen:
            aclose = getattr(choice.provider, "aclose", None)
            if aclose is None:
                continue
            try:
                await aclose()
            except Exception:  # shutting down: report it, close the rest
                log.exception("closing the %s provider %s failed", choice.kind, choice.id)

    app.on_cleanup.append(close_providers)
    return app


def _monitor_observer(
    hub: MonitorHub, handler: ResponderCallHandler | SpeechToSpeechCallHandler
) -> TurnObserver:
    """The turns a handler writes, for /monitor: bot lines and events; in speech-to-speech
    mode also the caller's finals (no STT session reports them to the monitor there)."""
    if isinstance(handler, ResponderCallHandler):
        return hub.on_turn

    def observe(call_sid: str, role: str, kind: str, text: str, at_ms: int) -> None:
        if role == "caller" and kind == "final":
            hub.on_transcript(call_sid, text)
        else:
            hub.on_turn(call_sid, role, kind, text, at_ms)

    return observe


def preload_providers(runtime: RuntimeConfig, report: Callable[[str], None] | None = None) -> None:
    """Load the chosen providers' models before listening, so the first call's
    greeting does not wait for them (Whisper and Piper take 1-4 s to load).

    Args:
        runtime: the chosen providers.
        report: called with ``"<kind> provider <id> ready in N ms"`` for a preload of 100 ms
            or more.

    Raises:
        VoicehostError: a provider could not be prepared.
    """
    for choice in runtime.chosen:
        if choice.kind == "responder":
            continue
        started = time.monotonic()
        choice.provider.preload(choice.config)
        elapsed_ms = (time.monotonic() - started) * 1000
        if elapsed_ms >= 100 and report is not None:
            report(f"{choice.kind} provider {choice.id} ready in {elapsed_ms:.0f} ms")
