"""A reusable base for streaming (WebSocket) speech-to-text sessions.

Cloud STT vendors (OpenAI Realtime transcription, Deepgram live) all need the same plumbing
around their socket, so it lives here once and each plugin only says how to open, feed, read
and close its vendor's stream:

* **A send queue drained by one task.** :meth:`~StreamingTranscriptionSession.send_audio`
  appends to an in-memory queue and returns at once; a pump task sends the queued audio in
  order (coalescing a backlog into one vendor message of at most ``max_send_bytes``). Every
  vendor send is bounded by ``send_timeout_s``: a send that blocks on a half-closed socket
  (pipecat #5796) counts as a dropped connection instead of stalling the call.
* **Keep-alive on silence.** With ``keepalive_interval_s`` set, the pump calls the plugin's
  :meth:`~StreamingTranscriptionSession._send_keepalive` after that long without any send
  (Deepgram closes a socket idle for about 10 s; pipecat #1113).
* **Reconnect with backoff, no words lost.** When the vendor socket drops mid-call, the session
  reconnects up to ``reconnect_attempts`` times, waiting ``reconnect_base_delay_s`` × 2ⁿ⁻¹
  (capped at ``reconnect_max_delay_s``) before try *n*. Audio that arrives meanwhile, and the
  chunk whose send failed, stay queued (at most ``reconnect_buffer_ms`` of audio; the oldest is
  dropped beyond that) and are sent, in order, on the new connection. When every try fails the
  callbacks' ``on_error`` fires exactly once and the session drops audio from then on: the call
  goes on without STT.
* **Credentials are never retried.** A 401/403 (:class:`~voicehost.errors.ProviderAuthError`)
  or any other :class:`~voicehost.errors.ProviderError` that is not a
  :class:`~voicehost.errors.ProviderConnectionError` (e.g. the vendor acknowledged a different
  audio format) ends the session at once.

:class:`StreamingTranscriptionProvider` is the matching provider side: an ``api_key`` check
and the input-format check, around the plugin's own session factory.

The knobs are keys of :class:`StreamingConfig`, the base of the plugin's config class, so users
tune them in the provider's ``[stt.<id>]`` table of ``plugins.toml``; the host parses that table
once at start-up and each session reads the typed fields (``keepalive_interval_s = 0``: none).
Plugins import all of this from ``voicehost`` itself (``from voicehost import StreamingConfig,
StreamingTranscriptionProvider, StreamingTranscriptionSession, upgrade_error``).
"""

from voicehost.stt_stream.connect_errors import http_status_of, retryable, upgrade_error
from voicehost.stt_stream.provider import StreamingTranscriptionProvider
from voicehost.stt_stream.session import SessionState, StreamingTranscriptionSession
from voicehost.stt_stream.settings import StreamingConfig

__all__ = [
    "SessionState",
    "StreamingConfig",
    "StreamingTranscriptionProvider",
    "StreamingTranscriptionSession",
    "http_status_of",
    "retryable",
    "upgrade_error",
]
