"""Settings of the Twilio call server: the ``[server]`` and ``[twilio]`` tables of
``plugins.toml``.

Every limit defaults to the seed's value (``media-stream.v2-hardened.ts``): 5000 ms to send
``start``, 32 sockets waiting for ``start`` (4 per client IP), 128 sockets in all, 64 KiB
inbound frames, 1 MiB outbound buffer. Unknown keys are refused so a typo never silently
falls back to a default.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from typing import Any

import attrs

from voicehost.errors import ConfigError

__all__ = ["ServerSettings", "is_loopback"]


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


def _path(value: str) -> str:
    if not value.startswith("/"):
        raise ValueError(f"must start with '/': {value!r}")
    return value.rstrip("/") or "/"


def _public_url(value: str) -> str:
    if not value.startswith(("https://", "http://")):
        raise ValueError(f"must be an http(s) URL: {value!r}")
    return value.rstrip("/")


def _positive(_inst: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if value <= 0:
        raise ValueError(f"{attribute.name} must be > 0, got {value!r}")


def _non_negative(_inst: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if value < 0:
        raise ValueError(f"{attribute.name} must be >= 0, got {value!r}")


_BOOL = attrs.validators.instance_of(bool)
_INT = [attrs.validators.instance_of(int), _positive]
_NUM = [attrs.validators.instance_of((int, float)), _positive]


@attrs.frozen(kw_only=True)
class ServerSettings:
    """Everything ``voicehost serve`` needs besides the providers.

    Attributes (``[server]`` table unless noted):
        public_url: the https URL Twilio reaches (scheme + host [+ path prefix]). Webhook
            signatures are checked against ``public_url + path + query``, never against the
            ``Host`` header, so a TLS-terminating proxy in front does not break them. The
            ``<Stream url>`` handed to Twilio is this URL with ``wss://`` (``ws://`` for http).
        webhook_path / stream_path / status_path: the voice webhook (POST), the Media Streams
            WebSocket (GET) and the call status callback (POST).
        account_sid: ``[twilio] account_sid`` (default ``$TWILIO_ACCOUNT_SID``); when set, a
            webhook for another account is refused with 403.
        auth_token: ``[twilio] auth_token`` (default ``$TWILIO_AUTH_TOKEN``); the HMAC key of
            ``X-Twilio-Signature``. Empty: signature checks are off (loopback only, see
            ``voicehost serve``).
        skip_signature_verification: ``[twilio]`` or ``[server]``; local development only,
            warns at start-up and on every request.
        pre_start_timeout_ms: a socket that sends no valid ``start`` in time is closed 1008.
        max_pending_connections / max_pending_connections_per_ip: sockets waiting for
            ``start`` (all / per client IP); over the limit the socket is closed 1013.
        max_connections: WebSocket sockets in all; over it the upgrade gets HTTP 503.
        max_inbound_message_bytes: bigger inbound frames close the socket (1009).
        max_outbound_buffer_bytes: outbound bytes not yet taken by the network; over it the
            stream is closed 1013 (Twilio stopped reading).
        token_ttl_s: how long a stream token stays valid unused (seconds).
        barge_in: caller speech start clears queued and playing replies.
        playback_lead_ms: at most this much reply audio is queued at Twilio ahead of its
            playhead (ms); bounds how much plays after a barge-in.
        mark_timeout_ms: how long after a reply's audio should have finished playing to wait
            for Twilio's ``mark`` echo before counting the reply finished anyway (ms).
        max_queued_replies: replies waiting behind the one playing; one more is refused.
        shutdown_grace_s: on SIGTERM, how long active calls may go on (seconds).
        stt_close_timeout_s: bound on closing a call's STT session (seconds).
        trusted_proxy_hops: reverse proxies in front of voicehost that append to
            ``X-Forwarded-For``. 0 (default): the client IP for the per-IP limit is the
            socket's peer. N: the N-th address from the right of ``X-Forwarded-For`` (what
            the outermost trusted proxy saw), so one proxy does not make every caller share
            the proxy's per-IP allowance. Never set it without such a proxy: the header is
            then the client's to forge.
        greeting: optional text spoken on every call start by the default handler.
    """

    public_url: str = attrs.field(default="http://127.0.0.1:8080", converter=_public_url)
    webhook_path: str = attrs.field(default="/voice/webhook", converter=_path)
    stream_path: str = attrs.field(default="/voice/stream", converter=_path)
    status_path: str = attrs.field(default="/voice/status", converter=_path)
    account_sid: str = ""
    auth_token: str = attrs.field(default="", repr=False)
    skip_signature_verification: bool = attrs.field(default=False, validator=_BOOL)
    pre_start_timeout_ms: int = attrs.field(default=5000, validator=_INT)
    max_pending_connections: int = attrs.field(default=32, validator=_INT)
    max_pending_connections_per_ip: int = attrs.field(default=4, validator=_INT)
    max_connections: int = attrs.field(default=128, validator=_INT)
    max_inbound_message_bytes: int = attrs.field(default=64 * 1024, validator=_INT)
    max_outbound_buffer_bytes: int = attrs.field(default=1024 * 1024, validator=_INT)
    token_ttl_s: float = attrs.field(default=30.0, validator=_NUM)
    barge_in: bool = attrs.field(default=True, validator=_BOOL)
    playback_lead_ms: int = attrs.field(
        default=100, validator=[attrs.validators.instance_of(int), _non_negative]
    )
    mark_timeout_ms: int = attrs.field(
        default=2000, validator=[attrs.validators.instance_of(int), _non_negative]
    )
    max_queued_replies: int = attrs.field(default=8, validator=_INT)
    shutdown_grace_s: float = attrs.field(
        default=10.0, validator=[attrs.validators.instance_of((int, float)), _non_negative]
    )
    stt_close_timeout_s: float = attrs.field(default=5.0, validator=_NUM)
    trusted_proxy_hops: int = attrs.field(
        default=0, validator=[attrs.validators.instance_of(int), _non_negative]
    )
    greeting: str = attrs.field(default="", validator=attrs.validators.instance_of(str))

    @property
    def verify_signatures(self) -> bool:
        """True when webhooks must carry a valid ``X-Twilio-Signature``."""
        return bool(self.auth_token) and not self.skip_signature_verification

    @property
    def stream_url(self) -> str:
        """The ``wss://`` (``ws://`` for an http ``public_url``) URL put in ``<Stream url>``."""
        scheme, rest = self.public_url.split("://", 1)
        return ("wss" if scheme == "https" else "ws") + "://" + rest + self.stream_path

    @classmethod
    def from_tables(
        cls,
        server: Mapping[str, Any] | None = None,
        twilio: Mapping[str, Any] | None = None,
        *,
        environ: Mapping[str, str] | None = None,
    ) -> ServerSettings:
        """Build settings from the ``[server]`` and ``[twilio]`` tables (``${VAR}`` already
        resolved by :mod:`voicehost.config`).

        ``[twilio] account_sid`` / ``auth_token`` default to ``$TWILIO_ACCOUNT_SID`` /
        ``$TWILIO_AUTH_TOKEN`` (read from ``environ``, default ``os.environ``); unset means
        empty.

        Raises:
            ConfigError: an unknown key or a bad value, naming the table and key.
        """
        env = os.environ if environ is None else environ
        server = dict(server or {})
        twilio = dict(twilio or {})
        fields = {f.name for f in attrs.fields(cls)}
        twilio_keys = {"account_sid", "auth_token", "skip_signature_verification"}
        kwargs: dict[str, Any] = {}
        for key, value in server.items():
            if key not in fields or key in {"account_sid", "auth_token"}:
                raise ConfigError(f"[server]: unknown key {key!r}")
            kwargs[key] = value
        for key, value in twilio.items():
            if key not in twilio_keys:
                raise ConfigError(f"[twilio]: unknown key {key!r}")
            kwargs[key] = value
        kwargs.setdefault("account_sid", env.get("TWILIO_ACCOUNT_SID", ""))
        kwargs.setdefault("auth_token", env.get("TWILIO_AUTH_TOKEN", ""))
        try:
            return cls(**kwargs)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"[server]/[twilio]: {exc}") from exc
