"""OpenTelemetry traces of calls and their turns: the optional ``voicehost[otel]`` extra.

Off unless ``[observability] traces = true``; then the app (``voicehost.app.assembly``) makes
a :class:`Tracing` with :func:`start_tracing` and the conversation
(:mod:`voicehost.conversation`) writes, per call:

* one ``call`` span (kind SERVER) from the stream's start to the call's end, attributes
  ``voicehost.call_sid``, ``voicehost.stream_sid``, ``voicehost.direction`` and, at the end,
  ``voicehost.end_reason``;
* per turn (the greeting, the answer to each final transcript or key press) a ``turn`` span,
  child of the call's, from the end of the caller's speech (else the final's arrival, else
  the responder being asked) to the end of the answer's playback, attributes
  ``voicehost.turn.trigger`` (``greeting`` | ``speech`` | ``dtmf``),
  ``voicehost.turn.latency_ms`` (end of speech → first bot audio, when measured),
  ``voicehost.turn.first_token_ms`` (responder asked → first text), ``voicehost.turn.cut_off``
  (the caller barged in), ``voicehost.responder``; with the child spans of its stages that
  happened: ``stt.final`` (end of speech → final transcript), ``responder`` (asked → its
  stream ended), ``tts.first_audio`` (first sentence handed to the TTS → first audio frame
  sent) and ``playback`` (first audio → played or cut off).

Turn spans are written when the answer is over, with their real start and end times (the
conversation measures ``time.monotonic()``; :func:`epoch_ns` turns that into wall-clock ns).
No transcript, phone number or other caller data goes into a span.

Spans go to an OTLP/HTTP collector (``[observability] otlp_endpoint``, the base URL such as
``http://collector:4318``; ``/v1/traces`` is appended; default
``$OTEL_EXPORTER_OTLP_ENDPOINT``, else the exporter's own default
``http://localhost:4318/v1/traces``) in batches from a background thread, or to the exporter
given (tests: the SDK's ``InMemorySpanExporter``, exported at once). voicehost uses its own
``TracerProvider`` (resource ``service.name`` = ``[observability] service_name``), not the
process's global one.

OpenTelemetry is imported only by :func:`start_tracing`: with traces off nothing of it is
loaded.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from voicehost.errors import ConfigError

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import Span, Tracer

__all__ = ["CallTrace", "Tracing", "clock_offset_ns", "epoch_ns", "start_tracing", "traces_url"]

log = logging.getLogger(__name__)

#: What to install when traces are on but OpenTelemetry is not.
_INSTALL = "pip install 'voicehost[otel]'"
#: A span attribute value: what OpenTelemetry accepts.
AttributeValue = str | bool | int | float


def epoch_ns(monotonic_s: float, offset_ns: int | None = None) -> int:
    """A ``time.monotonic()`` time as wall-clock ns since the epoch (a span's time).
    ``offset_ns``: wall-clock minus monotonic ns (:func:`clock_offset_ns`), so that several
    times converted together keep their exact differences; None: measured now."""
    if offset_ns is None:
        offset_ns = clock_offset_ns()
    return round(monotonic_s * 1e9) + offset_ns


def clock_offset_ns() -> int:
    """Wall-clock minus ``time.monotonic()``, ns, now."""
    return time.time_ns() - round(time.monotonic() * 1e9)


def traces_url(endpoint: str) -> str | None:
    """The OTLP/HTTP traces URL of a collector's base URL (``http://collector:4318`` →
    ``http://collector:4318/v1/traces``; one already ending in ``/v1/traces`` is kept);
    None for ``""`` (the exporter's default)."""
    endpoint = endpoint.strip()
    if not endpoint:
        return None
    if endpoint.rstrip("/").endswith("/v1/traces"):
        return endpoint.rstrip("/")
    return endpoint.rstrip("/") + "/v1/traces"


class CallTrace:
    """The ``call`` span of one call (made by :meth:`Tracing.start_call`), and its turns."""

    def __init__(self, tracing: Tracing, span: Span) -> None:
        self._tracing = tracing
        self.span = span

    def turn(
        self,
        start: float,
        end: float,
        stages: Sequence[tuple[str, float, float]],
        attributes: Mapping[str, AttributeValue | None],
    ) -> None:
        """Write one ``turn`` span (``start`` → ``end``, ``time.monotonic()`` s) with a child
        span per stage (name, start, end). Attributes that are None are left out. Never
        raises: a tracing failure is logged."""
        tracer, in_context = self._tracing.tracer, self._tracing.in_context
        offset = clock_offset_ns()
        try:
            span = tracer.start_span(
                "turn",
                context=in_context(self.span),
                start_time=epoch_ns(start, offset),
                attributes={k: v for k, v in attributes.items() if v is not None},
            )
            for name, stage_start, stage_end in stages:
                child = tracer.start_span(
                    name, context=in_context(span), start_time=epoch_ns(stage_start, offset)
                )
                child.end(end_time=epoch_ns(stage_end, offset))
            span.end(end_time=epoch_ns(max(end, start), offset))
        except Exception:
            log.exception("tracing: a turn span failed")

    def end(self, reason: str) -> None:
        """End the call's span (``voicehost.end_reason``). Idempotent; never raises."""
        try:
            if self.span.is_recording():
                self.span.set_attribute("voicehost.end_reason", reason)
                self.span.end()
        except Exception:
            log.exception("tracing: ending a call span failed")


class Tracing:
    """voicehost's tracer: makes the spans of calls (:meth:`start_call`).

    Args:
        provider: the ``TracerProvider`` (flushed and shut down by :meth:`shutdown`).
    """

    def __init__(self, provider: TracerProvider) -> None:
        from opentelemetry import trace  # only made with traces on (start_tracing)

        self.provider = provider
        self.tracer: Tracer = provider.get_tracer("voicehost")
        #: A span → the context that makes it the parent of a new span.
        self.in_context = trace.set_span_in_context
        self._server_kind = trace.SpanKind.SERVER

    def start_call(
        self, *, call_sid: str, stream_sid: str, direction: str, started_at: float | None = None
    ) -> CallTrace:
        """Start a call's ``call`` span (``started_at``: wall-clock s since the epoch; None:
        now)."""
        span = self.tracer.start_span(
            "call",
            kind=self._server_kind,
            start_time=None if started_at is None else round(started_at * 1e9),
            attributes={
                "voicehost.call_sid": call_sid,
                "voicehost.stream_sid": stream_sid,
                "voicehost.direction": direction or "unknown",
            },
        )
        return CallTrace(self, span)

    def shutdown(self) -> None:
        """Export what is waiting and stop (at server shutdown). Never raises."""
        try:
            self.provider.shutdown()
        except Exception:
            log.exception("tracing: shutting down failed")


def start_tracing(
    *,
    service_name: str = "voicehost",
    otlp_endpoint: str = "",
    exporter: SpanExporter | None = None,
) -> Tracing:
    """voicehost's :class:`Tracing`: spans of resource ``service.name`` = ``service_name``,
    sent in batches over OTLP/HTTP to ``otlp_endpoint`` (:func:`traces_url`), or each at once
    to ``exporter`` when given.

    Raises:
        ConfigError: OpenTelemetry is not installed (the ``voicehost[otel]`` extra).
    """
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
    except ImportError as exc:
        raise ConfigError(
            f"[observability] traces = true needs OpenTelemetry, which is not installed: {_INSTALL}"
        ) from exc
    provider = TracerProvider(
        resource=Resource.create({"service.name": service_name}), shutdown_on_exit=False
    )
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    else:
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        except ImportError as exc:
            raise ConfigError(
                f"[observability] traces = true needs the OTLP exporter, which is not "
                f"installed: {_INSTALL}"
            ) from exc
        url = traces_url(otlp_endpoint)
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=url)))
    return Tracing(provider)
