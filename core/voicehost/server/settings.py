"""Settings of the Twilio call server: the ``[server]`` table (:class:`ServerSettings`), the
``[twilio]`` table (:class:`TwilioSettings`) and the ``[observability]`` table
(:class:`ObservabilitySettings`) of ``plugins.toml``.

Every limit defaults to the seed's value (``media-stream.v2-hardened.ts``): 5000 ms to send
``start``, 32 sockets waiting for ``start`` (4 per client IP), 128 sockets in all, 64 KiB
inbound frames, 1 MiB outbound buffer. HTTP request heads and bodies must arrive within 10 s
each (:mod:`voicehost.server.http`). Both are typed config tables
(:class:`voicehost.config_model.ConfigModel`): unknown keys are refused so a typo never
silently falls back to a default.
"""

from __future__ import annotations

import ipaddress

from pydantic import Field, field_validator

from voicehost.config_model import ConfigModel, env_field
from voicehost.phone import check_e164, is_caller_pattern, matches_caller

__all__ = ["ObservabilitySettings", "ServerSettings", "TwilioSettings", "is_loopback"]


def is_loopback(host: str | None) -> bool:
    """True for ``localhost`` and loopback IPs (127.0.0.0/8, ``::1``, bracketed or not): the
    only addresses served without a Twilio auth token, and the only clients that may read
    call records without ``[records] api_token``. False for None and for any other name.
    """
    if host is None:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class ServerSettings(ConfigModel):
    """The ``[server]`` table: URLs, limits and behaviour of the call server.

    ``public_url`` is the https URL Twilio reaches (scheme + host [+ path prefix]). Webhook
    signatures are checked against ``public_url + path + query``, never against the ``Host``
    header, so a TLS-terminating proxy in front does not break them. The ``<Stream url>``
    handed to Twilio is this URL with ``wss://`` (``ws://`` for http).

    ``trusted_proxy_hops``: 0 (default) takes the client IP for the per-IP limit from the
    socket's peer; N takes the N-th address from the right of ``X-Forwarded-For`` (what the
    outermost trusted proxy saw). Never set it without such a proxy: the header is then the
    client's to forge.
    """

    public_url: str = Field(
        "http://127.0.0.1:8080",
        description="The http(s) URL Twilio reaches; signatures are checked against it.",
    )
    webhook_path: str = Field("/voice/webhook", description="The voice webhook (POST).")
    stream_path: str = Field("/voice/stream", description="The Media Streams WebSocket (GET).")
    status_path: str = Field("/voice/status", description="The call status callback (POST).")
    pre_start_timeout_ms: int = Field(
        5000, gt=0, description="A socket with no valid start in this time is closed 1008, ms."
    )
    max_pending_connections: int = Field(
        32, gt=0, description="Sockets waiting for start at once; one more is closed 1013."
    )
    max_pending_connections_per_ip: int = Field(4, gt=0, description="Of which from one client IP.")
    max_connections: int = Field(
        128, gt=0, description="WebSocket sockets in all; one more upgrade gets HTTP 503."
    )
    max_inbound_message_bytes: int = Field(
        64 * 1024, gt=0, description="Bigger inbound frames close the socket 1009, bytes."
    )
    max_outbound_buffer_bytes: int = Field(
        1024 * 1024,
        gt=0,
        description="Outbound bytes not yet taken by the network before the stream is closed "
        "1013 (Twilio stopped reading).",
    )
    token_ttl_s: float = Field(30.0, gt=0, description="A stream token's life unused, s.")
    barge_in: bool = Field(True, description="Caller speech clears queued and playing replies.")
    barge_in_min_speech_ms: int = Field(
        0,
        ge=0,
        le=2000,
        description="Caller speech over the bot first pauses it (clear at once); it is cut off "
        "only if the caller is still talking this long after their speech was detected, else "
        "it goes on where it stopped (a back-channel or a cough), ms; 0: cut off at once "
        "(plugins.toml ships 400).",
    )
    preemptive_generation: bool = Field(
        True,
        description="Tell the app the caller's turn before it is confirmed (the STT's early "
        "final, finals the turn detector is deciding), so it can prepare the reply; nothing is "
        "said until the turn ends.",
    )
    playback_lead_ms: int = Field(
        100,
        ge=0,
        description="Most reply audio queued at Twilio ahead of its playhead, ms (bounds what "
        "plays after a barge-in).",
    )
    mark_timeout_ms: int = Field(
        2000,
        ge=0,
        description="Wait this long past a reply's end for Twilio's mark echo before counting "
        "it played, ms.",
    )
    max_queued_replies: int = Field(
        8, gt=0, description="Replies waiting behind the one playing; one more is refused."
    )
    shutdown_grace_s: float = Field(
        10.0, ge=0, description="On SIGTERM, how long live calls may go on, s."
    )
    stt_close_timeout_s: float = Field(5.0, gt=0, description="Bound on closing STT, s.")
    trusted_proxy_hops: int = Field(
        0, ge=0, description="Reverse proxies in front that append to X-Forwarded-For."
    )
    greeting: str = Field(
        "", description="Spoken on every call start when no responder gives a greeting."
    )
    request_header_timeout_s: float = Field(
        10.0,
        gt=0,
        description="A connection whose request head is not complete this long after it "
        "opened (or after the head's first byte, when kept alive) is closed, s.",
    )
    request_body_timeout_s: float = Field(
        10.0,
        gt=0,
        description="A request body not complete this long after its head gets 408 and "
        "the connection is closed, s.",
    )
    keepalive_timeout_s: float = Field(
        75.0,
        gt=0,
        description="An idle kept-alive HTTP connection is closed after this long, s (keep "
        "it above a reverse proxy's upstream idle timeout).",
    )
    max_call_duration_s: float = Field(
        3600.0,
        gt=0,
        description="A call this long is ended: the bot says max_duration_message "
        "and hangs up (end reason max-duration), s.",
    )
    max_duration_message: str = Field(
        "We have reached the time limit for this call. Goodbye.",
        description="Said before a call is ended at max_call_duration_s; empty for none.",
    )
    stream_idle_timeout_s: float = Field(
        30.0,
        gt=0,
        description="A started stream that receives no message this long is ended (end "
        "reason idle); Twilio sends media every 20 ms, s.",
    )
    websocket_heartbeat_s: float = Field(
        10.0,
        gt=0,
        description="WebSocket ping interval of a Media Streams socket; a peer that does not "
        "answer a ping within half of it is closed (catches half-open sockets), s.",
    )
    transfer_message: str = Field(
        "Please hold while I transfer your call.",
        description="Said before a call is transferred (call.transfer); empty for none.",
    )

    @field_validator("webhook_path", "stream_path", "status_path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError(f"must start with '/', not {value!r}")
        return value.rstrip("/") or "/"

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")) or len(value.split("://", 1)[1]) == 0:
            raise ValueError(f"must be an http(s) URL, not {value!r}")
        return value.rstrip("/")

    @property
    def stream_url(self) -> str:
        """The ``wss://`` (``ws://`` for an http ``public_url``) URL put in ``<Stream url>``."""
        scheme, rest = self.public_url.split("://", 1)
        return ("wss" if scheme == "https" else "ws") + "://" + rest + self.stream_path

    def with_public_url(self, url: str) -> ServerSettings:
        """A copy with ``public_url`` set to ``url`` (validated).

        Raises:
            pydantic.ValidationError: ``url`` is not an http(s) URL.
        """
        return type(self).model_validate({**self.model_dump(), "public_url": url})


class TwilioSettings(ConfigModel):
    """The ``[twilio]`` table: the account whose webhooks are accepted and whose REST API
    places, updates and ends calls (wire-protocols.md §1.7), and who may call in."""

    account_sid: str = env_field(
        "TWILIO_ACCOUNT_SID",
        required=False,
        description="When set, a webhook for another account is refused with 403.",
    )
    auth_token: str = env_field(
        "TWILIO_AUTH_TOKEN",
        required=False,
        repr=False,
        description="HMAC key of X-Twilio-Signature; empty: checks off, loopback only.",
    )
    skip_signature_verification: bool = Field(
        False, description="Local development only: warns at start-up and on every request."
    )
    api_base_url: str = Field(
        "https://api.twilio.com",
        description="Base URL of Twilio's REST API (a proxy, or a local fake in tests).",
    )
    from_number: str = Field(
        "", description="Default caller ID (E.164) of outbound calls; empty: give --from."
    )
    allowed_callers: list[str] = Field(
        default_factory=list,
        description="When not empty, only these callers (E.164, or a prefix ending in *) are "
        "answered; others get <Reject/>.",
    )
    blocked_callers: list[str] = Field(
        default_factory=list,
        description="Callers (E.164, or a prefix ending in *) that get <Reject/>.",
    )
    say_voice: str = Field(
        "",
        description="Voice of <Say> (notify calls, the no-stream fallback), e.g. Polly.Joanna; "
        "empty: Twilio's default.",
    )

    @field_validator("api_base_url")
    @classmethod
    def _api_base_url(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")) or len(value.split("://", 1)[1]) == 0:
            raise ValueError(f"must be an http(s) URL, not {value!r}")
        return value.rstrip("/")

    @field_validator("from_number")
    @classmethod
    def _from_number(cls, value: str) -> str:
        return check_e164(value, "from_number") if value else value

    @field_validator("allowed_callers", "blocked_callers")
    @classmethod
    def _caller_patterns(cls, value: list[str]) -> list[str]:
        for pattern in value:
            if not is_caller_pattern(pattern):
                raise ValueError(
                    f"{pattern!r} is not an E.164 number (+15550001111) or a prefix ending "
                    "in * (+1555*)"
                )
        return value

    @property
    def verify_signatures(self) -> bool:
        """True when webhooks must carry a valid ``X-Twilio-Signature``."""
        return bool(self.auth_token) and not self.skip_signature_verification

    @property
    def rest_configured(self) -> bool:
        """True when the REST API can be used (account SID and auth token are set)."""
        return bool(self.account_sid and self.auth_token)

    def caller_refused(self, number: str) -> bool:
        """True when ``number`` (a webhook's ``From``) is blocked, or an allow-list is set
        and it is not on it."""
        if matches_caller(number, self.blocked_callers):
            return True
        return bool(self.allowed_callers) and not matches_caller(number, self.allowed_callers)


class ObservabilitySettings(ConfigModel):
    """The ``[observability]`` table: what the server counts and serves about itself.

    ``metrics``: count the Prometheus metrics of :mod:`voicehost.metrics` and serve them at
    ``GET /metrics`` (loopback clients only, or the ``[records] api_token`` bearer token, like
    ``/api/calls``). Off, counting is a no-op and ``/metrics`` answers 404.

    ``traces``: write OpenTelemetry spans of every call and its turns (:mod:`voicehost.tracing`;
    needs the ``voicehost[otel]`` extra) and send them over OTLP/HTTP to ``otlp_endpoint``
    (a collector's base URL, ``/v1/traces`` is appended; default
    ``$OTEL_EXPORTER_OTLP_ENDPOINT``, else ``http://localhost:4318``) as service
    ``service_name``. Off (the default), OpenTelemetry is not even imported. Spans are
    written by the responder's conversation: with no ``[responder]`` there are none.
    """

    metrics: bool = Field(
        True,
        description="Count Prometheus metrics and serve them at GET /metrics (loopback or "
        "[records] api_token); off: /metrics answers 404.",
    )
    traces: bool = Field(
        False,
        description="Write OpenTelemetry traces (a span per call, child spans per turn) and "
        "send them over OTLP/HTTP; needs the voicehost[otel] extra.",
    )
    otlp_endpoint: str = env_field(
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        required=False,
        description="OTLP/HTTP collector base URL for traces (http://collector:4318; "
        "/v1/traces is appended); empty: http://localhost:4318.",
    )
    service_name: str = Field(
        "voicehost",
        min_length=1,
        description="The traces' service.name resource attribute.",
    )
