"""One call's Deepgram live transcription on ``deepgram-sdk`` 7 (``client.listen.v1.connect``).

Protocol (Deepgram live streaming, wire-protocols.md §4): ``GET /v1/listen?encoding=mulaw&
sample_rate=8000&…`` with ``Authorization: Token <key>``; audio goes as binary frames, control
messages (``KeepAlive``, ``Finalize``, ``CloseStream``) as JSON text frames. Server messages:
``Results`` (``is_final``, ``speech_final``), ``UtteranceEnd``, ``SpeechStarted``,
``Metadata``, ``Error``.

Turn end follows Deepgram's "Understanding end of speech detection": ``is_final`` segments are
accumulated and reported as one ``on_transcript`` on ``speech_final: true`` or on
``UtteranceEnd`` (robust in noise), whichever comes first.
"""

from __future__ import annotations

import contextlib
import uuid
from typing import TYPE_CHECKING, Any

from voicehost import (
    ProviderError,
    StreamingTranscriptionSession,
    TranscriptionRequest,
    upgrade_error,
)
from voicehost_deepgram_stt.config import WHERE, DeepgramSTTConfig

if TYPE_CHECKING:  # the SDK is imported by the provider, when it builds the first client
    from deepgram import AsyncDeepgramClient
    from deepgram.listen.v1.socket_client import AsyncV1SocketClient

PROVIDER_ID = "deepgram"


class DeepgramTranscriptionSession(StreamingTranscriptionSession[DeepgramSTTConfig]):
    """Deepgram live transcription of one call (μ-law 8 kHz passed through as binary frames).

    Args:
        request: the call's request; ``request.config`` is normally ``config``.
        config: the parsed ``[stt.deepgram]`` table.
        client: the SDK client to open the live socket on (shared by calls).

    Callbacks: ``SpeechStarted`` → ``on_speech_start``; ``Results`` with ``is_final=false`` →
    ``on_partial`` (the utterance's finals so far plus the interim text); finals accumulated
    until ``speech_final`` or ``UtteranceEnd`` → one ``on_transcript``; ``Error`` →
    ``on_error``. ``KeepAlive`` goes after ``keepalive_interval_s`` without audio;
    :meth:`close` sends ``Finalize`` then ``CloseStream`` and waits for the last results.
    """

    provider_id = PROVIDER_ID
    #: 400 ms of μ-law per binary frame at most (a backlog after a reconnect).
    max_send_bytes = 3200

    def __init__(
        self,
        request: TranscriptionRequest,
        config: DeepgramSTTConfig,
        client: AsyncDeepgramClient,
    ) -> None:
        super().__init__(request, config)
        self._client = client
        self._stack: contextlib.AsyncExitStack | None = None
        self._socket: AsyncV1SocketClient | None = None
        self._finals: list[str] = []
        #: Sent as ``x-deepgram-session-id`` so Deepgram's logs tell calls apart.
        self.session_id = str(uuid.uuid4())

    async def _open(self) -> None:
        self._flush_finals()  # an utterance cut by a dropped socket still reaches the app
        stack = contextlib.AsyncExitStack()
        self._stack = stack
        connect = self._client.listen.v1.connect(
            **self.config.listen_options(),
            request_options={"additional_headers": {"x-deepgram-session-id": self.session_id}},
        )
        try:
            self._socket = await stack.enter_async_context(connect)
        except Exception as exc:
            refused = upgrade_error(PROVIDER_ID, exc, where=f"{WHERE} api_key (DEEPGRAM_API_KEY)")
            if refused is not None:
                raise refused from exc
            raise

    async def _send_audio(self, audio: bytes) -> None:
        assert self._socket is not None
        await self._socket.send_media(audio)

    async def _send_keepalive(self) -> None:
        assert self._socket is not None
        await self._socket.send_keep_alive()

    async def _receive(self) -> None:
        assert self._socket is not None
        async for message in self._socket:
            self._dispatch(message)

    def _dispatch(self, message: Any) -> None:
        kind = getattr(message, "type", None)
        if kind == "Results":
            alternatives = message.channel.alternatives if message.channel else []
            text = (alternatives[0].transcript or "").strip() if alternatives else ""
            if message.is_final:
                if text:
                    self._finals.append(text)
                if message.speech_final:
                    self._flush_finals()
                elif text:
                    self._emit_partial(" ".join(self._finals))
            elif text:
                self._emit_partial(" ".join([*self._finals, text]))
        elif kind == "UtteranceEnd":
            self._flush_finals()
        elif kind == "SpeechStarted":
            self._emit_speech_start()
        elif kind == "Error":
            code = getattr(message, "code", None) or getattr(message, "variant", None)
            text = getattr(message, "description", None) or getattr(message, "message", None)
            self._emit_error(ProviderError(PROVIDER_ID, text or "error", code=code))

    def _flush_finals(self) -> None:
        if self._finals:
            text = " ".join(self._finals)
            self._finals.clear()
            self._emit_transcript(text)

    async def _finish(self) -> None:
        """``Finalize`` (flush Deepgram's buffered audio), ``CloseStream``, then wait for the
        server to send its last ``Results`` and ``Metadata`` and close."""
        assert self._socket is not None
        await self._bounded_send(self._socket.send_finalize(), "Finalize")
        await self._bounded_send(self._socket.send_close_stream(), "CloseStream")
        await self._wait_receiver()

    def _on_closed(self) -> None:
        self._flush_finals()

    async def _discard_connection(self) -> None:
        stack, self._stack = self._stack, None
        self._socket = None
        if stack is not None:
            await stack.aclose()
