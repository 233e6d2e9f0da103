"""Prometheus metrics of a voicehost process, served at ``GET /metrics``
(:mod:`voicehost.server.metrics_route`).

Every metric lives in :data:`REGISTRY`, voicehost's own
:class:`prometheus_client.CollectorRegistry` (not the client's global default one), under a
``voicehost_`` name in base units (seconds), with bounded labels: never a call or stream SID,
never a phone number. The registry is process-global: several apps in one process (tests)
count into the same metrics.

* ``voicehost_active_calls`` (gauge): calls live now (streaming, or on the ``<Say>`` /
  ``<Gather>`` fallback); ``voicehost_websocket_connections`` (gauge): Media Streams sockets
  open now (waiting for ``start`` or carrying a call).
* ``voicehost_calls_total{direction, end_reason}``: calls that ended; ``direction`` inbound |
  outbound | unknown, ``end_reason`` one of ``voicehost.server.events.END_REASONS`` or
  ``other``.
* Histograms: ``voicehost_turn_latency_seconds`` (end of the caller's speech → first bot
  audio of the answer), ``voicehost_stt_final_latency_seconds{provider}`` (end of speech →
  final transcript), ``voicehost_responder_first_token_seconds{provider}`` (responder asked →
  first text), ``voicehost_tts_first_byte_seconds{provider}`` (synthesis asked → first audio
  byte; observed by the playback for every text reply).
* ``voicehost_barge_ins_total``: caller speech that cut the bot off.
* ``voicehost_back_channels_total``: caller speech over the bot that paused it but was over
  too soon to cut it off (a back-channel, a cough); the bot went on.
* ``voicehost_stt_reconnects_total{provider}``: STT vendor sockets that dropped mid-call.
* ``voicehost_vendor_errors_total{provider, kind}``: ``kind`` in :data:`VENDOR_ERROR_KINDS`.
* ``voicehost_media_frames_total{direction}``: 20 ms ``media`` frames, inbound (from Twilio)
  and outbound (written to Twilio's socket).
* ``voicehost_pacing_lateness_seconds`` (histogram): how late each outbound frame was handed
  to the socket vs its pacing schedule (``voicehost.server.playback``).
* ``voicehost_outbound_backlog_closes_total``: streams closed 1013 because Twilio stopped
  reading (outbound buffer over its limit).
* ``voicehost_malformed_messages_total{kind}``: ``kind`` in :data:`MALFORMED_KINDS` or
  ``other``.
* ``voicehost_plugin_load_failures_total``; ``voicehost_build_info{version}`` (1).
* ``process_*``: CPU seconds, memory, open descriptors of this process (the client's
  standard process collector).

The switch: ``[observability] metrics`` (``set_enabled``). Off, every helper here is a no-op,
:func:`media_tally` hands out a throwaway tally and ``/metrics`` answers 404. The flag is read
when a call starts (its frame tallies are bound then) and on every other count.

Hot path (per 20 ms frame): a :class:`prometheus_client.Counter` takes a lock per ``inc`` (about
1 µs here), too much three times per frame on 200 calls. Frame counts and pacing lateness
therefore go into one plain :class:`MediaTally` (slot increments, a bisect for the histogram),
bound once per call with :func:`media_tally` and turned into metric families only when
``/metrics`` is scraped. Everything is counted on the event loop's thread.
"""

from __future__ import annotations

import bisect
import importlib.metadata
import weakref
from collections.abc import Iterator, Sized
from typing import Protocol

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    Info,
    ProcessCollector,
)
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

__all__ = [
    "LATENCY_BUCKETS",
    "LATENESS_BUCKETS",
    "MALFORMED_KINDS",
    "REGISTRY",
    "VENDOR_ERROR_KINDS",
    "LiveCounts",
    "MediaTally",
    "call_direction",
    "count_backlog_close",
    "count_barge_in",
    "count_call_ended",
    "count_malformed",
    "count_plugin_load_failure",
    "count_stt_reconnect",
    "count_vendor_error",
    "enabled",
    "media_tally",
    "observe_responder_first_token",
    "observe_stt_final_latency",
    "observe_tts_first_byte",
    "observe_turn_latency",
    "provider_label",
    "set_enabled",
    "track_live",
]

#: voicehost's registry; ``/metrics`` serves exactly this.
REGISTRY = CollectorRegistry(auto_describe=True)

#: Buckets of the latency histograms (turn, STT final, responder, TTS), s.
LATENCY_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)
#: Buckets of ``voicehost_pacing_lateness_seconds`` (a frame is 20 ms), s.
LATENESS_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25)
_FIRST_LATENESS_BUCKET = LATENESS_BUCKETS[0]

#: ``kind`` of ``voicehost_malformed_messages_total`` (``voicehost.server.protocol``); any
#: other kind is counted as ``other``.
MALFORMED_KINDS = frozenset({"json", "unknown_event", "field", "base64", "binary"})

#: ``kind`` of ``voicehost_vendor_errors_total``; any other kind is counted as ``other``.
#:
#: * ``connect``: one connect try of a streaming STT vendor failed (network, timeout, 5xx,
#:   429); it is retried (:mod:`voicehost.stt_stream`).
#: * ``auth``: the vendor refused the credentials (401/403); never retried.
#: * ``refused``: the vendor refused the request otherwise (another 4xx); never retried.
#: * ``session``: the STT provider could not make a call's session.
#: * ``unavailable``: a call's STT never connected (every try failed); the call goes on
#:   without transcription.
#: * ``reported``: the STT session reported an error (a vendor error, or a streaming session
#:   that gave up reconnecting).
#: * ``send``: the STT session's ``send_audio`` raised (a plugin bug); transcription stops.
#: * ``synthesis``: a TTS reply failed.
VENDOR_ERROR_KINDS = frozenset(
    {"connect", "auth", "refused", "session", "unavailable", "reported", "send", "synthesis"}
)

_MAX_LABEL_CHARS = 64

_enabled = True


def set_enabled(flag: bool) -> None:
    """Switch counting on or off for the whole process (``[observability] metrics``)."""
    global _enabled
    _enabled = bool(flag)


def enabled() -> bool:
    """True while metrics are counted and served."""
    return _enabled


# --- label helpers ---------------------------------------------------------------------------


def call_direction(direction: str) -> str:
    """Twilio's ``Direction`` as the ``direction`` label: ``inbound``, ``outbound``
    (``outbound-api``, ``outbound-dial``) or ``unknown``."""
    if direction == "inbound":
        return "inbound"
    if direction.startswith("outbound"):
        return "outbound"
    return "unknown"


def provider_label(provider: object) -> str:
    """The ``provider`` label of a provider object or id: its ``id`` (a plugin's id, so the
    values are bounded by the installed plugins), or ``unknown``."""
    value = provider if isinstance(provider, str) else getattr(provider, "id", "")
    if not isinstance(value, str) or not value or len(value) > _MAX_LABEL_CHARS:
        return "unknown"
    return value


def _bounded(value: str, allowed: frozenset[str]) -> str:
    return value if value in allowed else "other"


# --- calls, sockets, conversation ------------------------------------------------------------

_CALLS = Counter(
    "voicehost_calls_total",
    "Calls that ended, by direction and end reason.",
    ["direction", "end_reason"],
    registry=REGISTRY,
)
_BARGE_INS = Counter(
    "voicehost_barge_ins_total",
    "Caller speech that cut the bot off (playing or queued replies cancelled).",
    registry=REGISTRY,
)
_BACK_CHANNELS = Counter(
    "voicehost_back_channels_total",
    "Caller speech over the bot that paused it but was too short to cut it off.",
    registry=REGISTRY,
)
_TURN_LATENCY = Histogram(
    "voicehost_turn_latency_seconds",
    "End of the caller's speech to the first bot audio of the answer, s.",
    buckets=LATENCY_BUCKETS,
    registry=REGISTRY,
)
_STT_FINAL = Histogram(
    "voicehost_stt_final_latency_seconds",
    "End of the caller's speech to the STT provider's final transcript, s.",
    ["provider"],
    buckets=LATENCY_BUCKETS,
    registry=REGISTRY,
)
_RESPONDER_FIRST_TOKEN = Histogram(
    "voicehost_responder_first_token_seconds",
    "Responder asked for an answer to its first text, s.",
    ["provider"],
    buckets=LATENCY_BUCKETS,
    registry=REGISTRY,
)
_TTS_FIRST_BYTE = Histogram(
    "voicehost_tts_first_byte_seconds",
    "Synthesis asked to the TTS provider's first audio byte, s.",
    ["provider"],
    buckets=LATENCY_BUCKETS,
    registry=REGISTRY,
)


def count_call_ended(direction: str, end_reason: str) -> None:
    """A call ended (once per call).

    Args:
        direction: Twilio's ``Direction`` (mapped by :func:`call_direction`).
        end_reason: one of a bounded set of reasons; the caller maps any other to ``other``
            (the transport uses ``voicehost.server.events.END_REASONS``).
    """
    if _enabled:
        _CALLS.labels(call_direction(direction), end_reason[:_MAX_LABEL_CHARS]).inc()


def count_barge_in() -> None:
    """Caller speech cut the bot off."""
    if _enabled:
        _BARGE_INS.inc()


def count_back_channel() -> None:
    """Caller speech over the bot was a back-channel: the bot went on."""
    if _enabled:
        _BACK_CHANNELS.inc()


def observe_turn_latency(seconds: float) -> None:
    """One turn: end of the caller's speech → first bot audio of the answer, s."""
    if _enabled and seconds >= 0:
        _TURN_LATENCY.observe(seconds)


def observe_stt_final_latency(provider: object, seconds: float) -> None:
    """End of the caller's speech → the final transcript of ``provider`` (object or id), s."""
    if _enabled and seconds >= 0:
        _STT_FINAL.labels(provider_label(provider)).observe(seconds)


def observe_responder_first_token(provider: object, seconds: float) -> None:
    """Responder ``provider`` (object or id) asked → its first text, s."""
    if _enabled and seconds >= 0:
        _RESPONDER_FIRST_TOKEN.labels(provider_label(provider)).observe(seconds)


def observe_tts_first_byte(provider: object, seconds: float) -> None:
    """Synthesis asked of TTS ``provider`` (object or id) → its first audio byte, s."""
    if _enabled and seconds >= 0:
        _TTS_FIRST_BYTE.labels(provider_label(provider)).observe(seconds)


# --- vendors, transport, plugins -------------------------------------------------------------

_STT_RECONNECTS = Counter(
    "voicehost_stt_reconnects_total",
    "STT vendor sockets that dropped mid-call and were reconnected (or tried to be).",
    ["provider"],
    registry=REGISTRY,
)
_VENDOR_ERRORS = Counter(
    "voicehost_vendor_errors_total",
    "Vendor failures by provider and kind (see voicehost.metrics.VENDOR_ERROR_KINDS).",
    ["provider", "kind"],
    registry=REGISTRY,
)
_BACKLOG_CLOSES = Counter(
    "voicehost_outbound_backlog_closes_total",
    "Media streams closed because Twilio stopped reading (outbound buffer over its limit).",
    registry=REGISTRY,
)
_MALFORMED = Counter(
    "voicehost_malformed_messages_total",
    "Malformed Media Streams messages by kind; never passed to the application.",
    ["kind"],
    registry=REGISTRY,
)
for _kind in sorted(MALFORMED_KINDS):
    _MALFORMED.labels(_kind)
_PLUGIN_LOAD_FAILURES = Counter(
    "voicehost_plugin_load_failures_total",
    "Plugins that failed to load (skipped, or start-up refused in strict mode).",
    registry=REGISTRY,
)


def count_stt_reconnect(provider: object) -> None:
    """The STT vendor socket of ``provider`` (object or id) dropped mid-call."""
    if _enabled:
        _STT_RECONNECTS.labels(provider_label(provider)).inc()


def count_vendor_error(provider: object, kind: str) -> None:
    """A failure of vendor ``provider`` (object or id); ``kind`` in
    :data:`VENDOR_ERROR_KINDS` (else counted as ``other``)."""
    if _enabled:
        _VENDOR_ERRORS.labels(provider_label(provider), _bounded(kind, VENDOR_ERROR_KINDS)).inc()


def count_backlog_close() -> None:
    """A stream is closed because Twilio stopped reading."""
    if _enabled:
        _BACKLOG_CLOSES.inc()


def count_malformed(kind: str) -> None:
    """A malformed Media Streams message of ``kind`` (:data:`MALFORMED_KINDS`, else
    ``other``)."""
    if _enabled:
        _MALFORMED.labels(_bounded(kind, MALFORMED_KINDS)).inc()


def count_plugin_load_failure() -> None:
    """A plugin failed to load."""
    if _enabled:
        _PLUGIN_LOAD_FAILURES.inc()


def _version() -> str:
    try:
        return importlib.metadata.version("voicehost")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


Info("voicehost_build", "voicehost's version.", registry=REGISTRY).info({"version": _version()})
ProcessCollector(registry=REGISTRY)


# --- the hot path: media frames and pacing ---------------------------------------------------


class MediaTally:
    """Plain counters of the per-frame metrics, cheap to bump (no lock, no label lookup).

    Attributes:
        frames_in: inbound ``media`` frames.
        frames_out: outbound ``media`` frames written to the socket.
        lateness_counts: pacing lateness observations per bucket of
            :data:`LATENESS_BUCKETS` (not cumulative; the last entry is ``+Inf``).
        lateness_sum: their sum, s.
    """

    __slots__ = ("frames_in", "frames_out", "lateness_counts", "lateness_sum")

    def __init__(self) -> None:
        self.frames_in = 0
        self.frames_out = 0
        self.lateness_counts = [0] * (len(LATENESS_BUCKETS) + 1)
        self.lateness_sum = 0.0

    def late(self, seconds: float) -> None:
        """A frame left ``seconds`` after its schedule (0 or less: on time)."""
        if seconds <= _FIRST_LATENESS_BUCKET:
            self.lateness_counts[0] += 1
            if seconds > 0:
                self.lateness_sum += seconds
            return
        self.lateness_counts[bisect.bisect_left(LATENESS_BUCKETS, seconds)] += 1
        self.lateness_sum += seconds


_MEDIA = MediaTally()


def media_tally() -> MediaTally:
    """The tally a call (or its playback / socket) bumps for every frame: the process's
    while metrics are on, a throwaway one while they are off. Bind it once, when the call
    starts."""
    return _MEDIA if _enabled else MediaTally()


class LiveCounts(Protocol):
    """What the live gauges read of a call server (``voicehost.server.CallServer``)."""

    @property
    def calls(self) -> Sized:
        """The calls live on it."""
        ...

    @property
    def sockets(self) -> Sized:
        """Its open Media Streams sockets."""
        ...


_LIVE: weakref.WeakSet[LiveCounts] = weakref.WeakSet()  # type: ignore[type-var]


def track_live(source: LiveCounts) -> None:
    """Report ``source``'s live calls and sockets in the gauges (summed over every source in
    the process) for as long as it exists; a no-op while metrics are off."""
    if _enabled:
        _LIVE.add(source)


class _ScrapeCollector:
    """The metrics computed when ``/metrics`` is scraped: the live gauges and the
    :class:`MediaTally` families."""

    def collect(self) -> Iterator[Metric]:
        sources = list(_LIVE)
        yield GaugeMetricFamily(
            "voicehost_active_calls",
            "Calls live now (streaming or on the <Say>/<Gather> fallback).",
            value=sum(len(source.calls) for source in sources),
        )
        yield GaugeMetricFamily(
            "voicehost_websocket_connections",
            "Media Streams sockets open now (waiting for start or carrying a call).",
            value=sum(len(source.sockets) for source in sources),
        )
        tally = _MEDIA
        frames = CounterMetricFamily(
            "voicehost_media_frames",
            "20 ms media frames: inbound from Twilio, outbound written to Twilio's socket.",
            labels=["direction"],
        )
        frames.add_metric(["inbound"], tally.frames_in)
        frames.add_metric(["outbound"], tally.frames_out)
        yield frames
        cumulative = 0
        buckets: list[tuple[str, float]] = []
        bounds = (*(repr(bound) for bound in LATENESS_BUCKETS), "+Inf")
        for bound, count in zip(bounds, tally.lateness_counts, strict=True):
            cumulative += count
            buckets.append((bound, cumulative))
        yield HistogramMetricFamily(
            "voicehost_pacing_lateness_seconds",
            "How late each outbound frame was handed to the socket vs its pacing schedule, s.",
            buckets=buckets,
            sum_value=tally.lateness_sum,
        )


REGISTRY.register(_ScrapeCollector())
