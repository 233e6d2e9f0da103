"""OpenTelemetry traces (``[observability] traces``): a span per call with its SIDs and
direction, and a child span per turn with the stages that happened, checked with the SDK's
in-memory exporter during a simulated call; off by default, and then OpenTelemetry is never
imported.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap

import pytest
from aiohttp.test_utils import TestServer
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from voicehost.app.assembly import (
    AppConfig,
    build_serve_app,
    create_handler,
    load_app_config,
    make_responder,
)
from voicehost.config import Settings
from voicehost.conversation import ResponderCallHandler
from voicehost.errors import ConfigError
from voicehost.plugins import PluginHost
from voicehost.server import SERVER_KEY
from voicehost.testing import TwilioSimulator
from voicehost.testing.providers import FakeProvidersPlugin
from voicehost.tracing import start_tracing, traces_url

SCRIPT = {
    "greeting": "Hello there.",
    "fallback": "Pardon?",
    "rules": [
        {"match": r"\bhours\b", "reply": "Nine to five."},
        {"match": r"\bbye\b", "reply": "Goodbye.", "hangup": True},
    ],
}


def app_config(tmp_path, **observability) -> tuple[AppConfig, FakeProvidersPlugin]:
    host = PluginHost()
    host.load_builtins()
    fakes = FakeProvidersPlugin()
    host.register(fakes, name="voicehost-fakes")
    settings = Settings.from_dict(
        {
            "stt": {"provider": "fake"},
            "tts": {"provider": "fake", "fake": {"ms_per_char": 10}},
            "responder": {"provider": "scripted", "scripted": SCRIPT},
            "records": {"path": str(tmp_path / "calls.db")},
            "observability": observability,
        }
    )
    return load_app_config(settings=settings, host=host), fakes


def by_name(spans: list[ReadableSpan], name: str) -> list[ReadableSpan]:
    return [span for span in spans if span.name == name]


async def test_a_call_is_one_span_with_a_child_span_per_turn(tmp_path):
    exporter = InMemorySpanExporter()
    config, fakes = app_config(tmp_path)

    def traced(config: AppConfig) -> ResponderCallHandler:
        responder = make_responder(config)
        assert responder is not None
        tracing = start_tracing(service_name="phone-bot", exporter=exporter)
        return ResponderCallHandler(responder, responder_id="scripted", tracing=tracing)

    app = build_serve_app(config, handler_factory=traced)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    async with TwilioSimulator(str(server.make_url("")), speed=math.inf) as sim:
        call = await sim.start_call(from_="+15550100", to="+15550200")
        stt = await fakes.stt.wait_for_session()
        await call.wait_for_event("mark", where=lambda e: e["mark"]["name"] == "reply-1")
        stt.speech_start()
        stt.speech_end(0.2)
        stt.final("what are your hours")
        await call.wait_for_event("mark", where=lambda e: e["mark"]["name"] == "reply-2")
        stt.final("ok bye")
        assert await call.wait_closed(timeout=15) == 1000
        live = server.app[SERVER_KEY].calls.get(call.call_sid)
        if live is not None:
            await live.wait_ended()
        call_sid, stream_sid = call.call_sid, call.stream_sid
    await server.close()  # the handler's clean-up shuts the tracing down (flushes)

    spans = list(exporter.get_finished_spans())
    [call_span] = by_name(spans, "call")
    assert dict(call_span.attributes or {}) == {
        "voicehost.call_sid": call_sid,
        "voicehost.stream_sid": stream_sid,
        "voicehost.direction": "inbound",
        "voicehost.end_reason": "bot-hangup",
    }
    assert call_span.resource.attributes["service.name"] == "phone-bot"
    trace_id = call_span.context.trace_id
    assert all(span.context.trace_id == trace_id for span in spans)

    turns = by_name(spans, "turn")
    assert all(turn.parent is not None for turn in turns)
    assert {turn.parent.span_id for turn in turns} == {call_span.context.span_id}
    triggers = [turn.attributes["voicehost.turn.trigger"] for turn in turns]
    assert sorted(triggers) == ["greeting", "speech", "speech"]

    def children(turn: ReadableSpan) -> dict[str, ReadableSpan]:
        found = [s for s in spans if s.parent and s.parent.span_id == turn.context.span_id]
        return {span.name: span for span in found}

    answered = [t for t in turns if t.attributes["voicehost.turn.trigger"] == "speech"]
    hours = min(answered, key=lambda span: span.start_time)
    stages = children(hours)
    assert set(stages) == {"stt.final", "responder", "tts.first_audio", "playback"}
    assert hours.attributes["voicehost.responder"] == "scripted"
    assert hours.attributes["voicehost.turn.latency_ms"] >= 0
    assert hours.attributes["voicehost.turn.cut_off"] is False
    # The stages in order: speech end → final; the first audio → the end of the turn.
    assert stages["stt.final"].start_time == hours.start_time
    assert stages["stt.final"].end_time <= stages["tts.first_audio"].end_time
    assert stages["tts.first_audio"].end_time == stages["playback"].start_time
    assert stages["playback"].end_time == hours.end_time
    for span in spans:
        assert span.start_time <= span.end_time
    bye = max(answered, key=lambda span: span.start_time)
    assert "stt.final" not in children(bye)  # no speech end reported before "ok bye"
    [greeting] = [t for t in turns if t.attributes["voicehost.turn.trigger"] == "greeting"]
    assert set(children(greeting)) == {"responder", "tts.first_audio", "playback"}

    # Nothing the caller said or their number is in a span.
    dumped = json.dumps([dict(span.attributes or {}) for span in spans])
    for private in ("hours", "bye", "+15550100", "Nine to five"):
        assert private not in dumped


def test_traces_are_off_by_default_and_opentelemetry_is_never_imported(tmp_path):
    """In a fresh process: the serve app with a responder and records, traces off."""
    code = textwrap.dedent(
        f"""
        import sys
        from voicehost.app.assembly import build_serve_app, load_app_config
        from voicehost.config import Settings
        from voicehost.plugins import PluginHost
        from voicehost.testing.providers import FakeProvidersPlugin

        host = PluginHost()
        host.load_builtins()
        host.register(FakeProvidersPlugin(), name="voicehost-fakes")
        settings = Settings.from_dict({{
            "stt": {{"provider": "fake"}}, "tts": {{"provider": "fake"}},
            "responder": {{"provider": "scripted", "scripted": {{"greeting": "Hi."}}}},
            "records": {{"path": {str(tmp_path / "calls.db")!r}}},
        }})
        config = load_app_config(settings=settings, host=host)
        assert config.observability.traces is False
        build_serve_app(config)
        loaded = sorted(m for m in sys.modules if m.startswith("opentelemetry"))
        print(loaded)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


async def test_traces_on_make_an_otlp_tracer_with_the_configured_service(tmp_path):
    config, _ = app_config(
        tmp_path, traces=True, otlp_endpoint="http://127.0.0.1:9", service_name="bot-7"
    )
    handler = create_handler(config)
    assert isinstance(handler, ResponderCallHandler) and handler.tracing is not None
    assert handler.responder_id == "scripted"
    resource = handler.tracing.provider.resource
    assert resource.attributes["service.name"] == "bot-7"
    await handler.aclose()  # nothing was traced: shutting down sends nothing

    config, _ = app_config(tmp_path)
    handler = create_handler(config)
    assert isinstance(handler, ResponderCallHandler) and handler.tracing is None
    await handler.aclose()


def test_traces_without_opentelemetry_installed_is_a_config_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "opentelemetry.sdk.trace", None)  # import fails
    with pytest.raises(ConfigError, match=r"voicehost\[otel\]"):
        start_tracing()


def test_the_otlp_endpoint_is_a_collector_base_url():
    assert traces_url("") is None
    assert traces_url("http://collector:4318") == "http://collector:4318/v1/traces"
    assert traces_url("http://collector:4318/") == "http://collector:4318/v1/traces"
    assert traces_url("https://x.example/v1/traces") == "https://x.example/v1/traces"
