"""The speech-to-text conformance tests. See :mod:`voicehost.testing.conformance`."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator
from typing import Any, ClassVar

import attrs
import pytest

from voicehost.audio import AudioConverter
from voicehost.config_model import ProviderConfig
from voicehost.contracts import (
    MULAW_8K,
    AudioFormat,
    TranscriptionCapabilities,
    TranscriptionProvider,
    TranscriptionRequest,
    TranscriptionSession,
)
from voicehost.errors import ProviderError
from voicehost.testing.conformance.base import CALL_SID, STREAM_SID, _ProviderChecks
from voicehost.testing.conformance.support import (
    FRAME_BYTES,
    CallbackRecorder,
    Clip,
    bounded,
    contains_words,
    frames,
    load_clip,
    words,
)


@attrs.define
class _SttRun:
    """One session under test, fed as the host feeds it."""

    session: TranscriptionSession
    recorder: CallbackRecorder
    converter: AudioConverter | None
    loop_thread: int


class TranscriptionConformance(_ProviderChecks):
    """The speech-to-text contract (:class:`~voicehost.TranscriptionProvider`), as tests.

    Give the provider, its config and a speech clip with its words; for the connection
    check, a config whose endpoint refuses connections. A complete test module::

        import pytest

        from voicehost.testing.conformance import TranscriptionConformance, config_from_table
        from voicehost_mystt import MySTTProvider


        class TestMySTT(TranscriptionConformance):
            config_table = {"api_key": "test-key", "base_url": "http://127.0.0.1:8765"}
            clip = "tests/data/book_a_table.wav"   # or μ-law 8 kHz bytes
            clip_words = "book a table"

            @pytest.fixture
            def provider(self):
                return MySTTProvider()

            @pytest.fixture
            def refused_config(self, provider, refusing_url):
                return config_from_table(provider, {"api_key": "k", "base_url": refusing_url})

    Fixtures to override: ``provider`` (required), ``config`` (default: :attr:`config_table`
    parsed), ``speech_clip`` (default: :attr:`clip` loaded as μ-law 8 kHz),
    ``refused_config`` (default None: that test is skipped) and ``stalled_config`` (default
    None: the "vendor stalls" test uses ``config``). The kit provides ``refusing_url`` (a
    127.0.0.1 port where nothing listens) and ``stalled_url`` (one that accepts connections
    and never answers) for them.

    The clip must be speech *without trailing silence*: the kit sends it and closes the
    session at once, so its final transcript comes only from the flush in ``close()``. Audio
    goes in 20 ms frames, one frame per event-loop turn (no real-time pacing), converted to
    the provider's first input format unless it takes μ-law 8 kHz, as the host does. The
    final transcripts must contain the words of :attr:`clip_words` in order, compared case-
    and punctuation-insensitively (:func:`contains_words`); other words may come between
    them, so pick words the recogniser gets right.
    """

    provider_type: ClassVar[type] = TranscriptionProvider
    #: The speech clip: μ-law 8 kHz bytes or an audio file path (read by :func:`load_clip`).
    clip: ClassVar[Clip | None] = None
    #: Words the clip's final transcript must contain, in order.
    clip_words: ClassVar[str] = ""
    #: Bound of one ``send_audio`` call, s (the contract: it never blocks).
    send_audio_within_s: ClassVar[float] = 0.5
    #: Bound of ``connect()``, s (a local model may load on the first one).
    connect_within_s: ClassVar[float] = 60.0
    #: Bound of ``close()``, s (it includes transcribing the flushed utterance).
    close_within_s: ClassVar[float] = 60.0
    #: Bound for a refused connection to be reported, s (retries with back-off included).
    refused_within_s: ClassVar[float] = 30.0

    @pytest.fixture
    def speech_clip(self) -> bytes:
        """The clip as μ-law 8 kHz bytes (default: :attr:`clip` through :func:`load_clip`)."""
        if self.clip is None:
            pytest.fail(f"{type(self).__name__}: set `clip` or override `speech_clip`")
        return load_clip(self.clip)

    @pytest.fixture
    def refused_config(self, provider: Any, refusing_url: str) -> ProviderConfig | None:
        """A config whose vendor endpoint refuses connections (e.g. ``base_url`` =
        ``refusing_url``); None skips the check."""
        return None

    @pytest.fixture
    def stalled_config(self, provider: Any, stalled_url: str) -> ProviderConfig | None:
        """A config whose vendor endpoint accepts and never answers (e.g. ``base_url`` =
        ``stalled_url``); None uses ``config``."""
        return None

    # --- plumbing --------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _session(
        self, provider: TranscriptionProvider, config: ProviderConfig
    ) -> AsyncIterator[_SttRun]:
        """A session fed as the host feeds it; closed at the end whatever happens."""
        fmt = MULAW_8K if MULAW_8K in provider.input_formats else provider.input_formats[0]
        recorder = CallbackRecorder()
        request = TranscriptionRequest(
            config=config,
            callbacks=recorder.callbacks,
            input_format=fmt,
            call_sid=CALL_SID,
            stream_sid=STREAM_SID,
        )
        session = provider.create_session(request)
        assert isinstance(session, TranscriptionSession), (
            f"create_session returned a {type(session).__name__}, not a TranscriptionSession"
        )
        converter = None if fmt == MULAW_8K else AudioConverter(MULAW_8K, fmt)
        run = _SttRun(session, recorder, converter, threading.get_ident())
        try:
            yield run
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(session.close(), self.close_within_s)

    def _send(self, run: _SttRun, frame: bytes) -> None:
        """One ``send_audio`` call, checked: never raises, returns within the bound."""
        audio = run.converter.convert(frame) if run.converter is not None else frame
        if not audio:
            return
        started = time.monotonic()
        try:
            run.session.send_audio(audio)
        except Exception as exc:
            pytest.fail(
                f"send_audio raised {exc!r}: it must never raise (report failures through on_error)"
            )
        took = time.monotonic() - started
        assert took <= self.send_audio_within_s, (
            f"send_audio blocked for {took:.3f} s (bound {self.send_audio_within_s:g} s): it "
            "must only queue the audio"
        )

    async def _speak(self, run: _SttRun, audio: bytes) -> None:
        for frame in frames(audio):
            self._send(run, frame)
            await asyncio.sleep(0)  # one frame per event-loop turn, as frames arrive

    async def _transcribe(
        self, provider: Any, config: ProviderConfig, clip: bytes, *, connect_first: bool
    ) -> tuple[_SttRun, list[str]]:
        """Send the clip and close; ``(run, the finals reported before close returned)``.
        With ``connect_first`` False the clip is sent while ``connect()`` runs (the host
        does that: it connects in the background and feeds frames as they come)."""
        async with self._session(provider, config) as run:
            session = run.session
            if connect_first:
                await bounded(session.connect(), self.connect_within_s, "connect()")
                await self._speak(run, clip)
            else:
                connecting = asyncio.ensure_future(session.connect())
                await self._speak(run, clip)
                await bounded(connecting, self.connect_within_s, "connect()")
            await bounded(session.close(), self.close_within_s, "close() (flushing the clip)")
            finals = list(run.recorder.finals)
        assert not run.recorder.errors, f"on_error was called: {run.recorder.errors!r}"
        return run, finals

    def _check_words(self, finals: list[str]) -> None:
        assert words(self.clip_words), f"{type(self).__name__}: set `clip_words`"
        heard = " ".join(finals)
        assert finals, (
            "no final transcript arrived before close() returned: close() must flush the "
            "utterance in progress and report its final"
        )
        assert contains_words(heard, self.clip_words), (
            f"the final transcripts {finals!r} do not contain the words {self.clip_words!r} "
            "(in order, case and punctuation ignored)"
        )

    # --- the contract ----------------------------------------------------------------------

    def test_declares_input_formats_and_capabilities(self, provider: Any) -> None:
        """``input_formats`` is a non-empty tuple of formats the host can convert to;
        ``capabilities`` a :class:`~voicehost.TranscriptionCapabilities`."""
        formats = provider.input_formats
        assert isinstance(formats, tuple) and formats, "input_formats must be a non-empty tuple"
        for fmt in formats:
            assert isinstance(fmt, AudioFormat), f"{fmt!r} is not an AudioFormat"
            AudioConverter(MULAW_8K, fmt)  # raises ValueError for a format the host cannot make
        assert isinstance(provider.capabilities, TranscriptionCapabilities)

    @pytest.mark.asyncio
    async def test_close_without_connect_is_idempotent(
        self, provider: Any, config: ProviderConfig
    ) -> None:
        """``close()`` on a session never connected, twice: no error, no hang."""
        async with self._session(provider, config) as run:
            await bounded(run.session.close(), self.close_within_s, "close() without connect()")
            await bounded(run.session.close(), self.close_within_s, "a second close()")
            assert run.session.connected is False

    @pytest.mark.asyncio
    async def test_connect_then_close_twice(self, provider: Any, config: ProviderConfig) -> None:
        """``connect()`` opens (``connected`` is True), ``close()`` twice closes (False)."""
        async with self._session(provider, config) as run:
            await bounded(run.session.connect(), self.connect_within_s, "connect()")
            assert run.session.connected is True, "connected is not True after connect()"
            await bounded(run.session.close(), self.close_within_s, "close()")
            await bounded(run.session.close(), self.close_within_s, "a second close()")
            assert run.session.connected is False, "connected is not False after close()"
        assert not run.recorder.errors, f"on_error was called: {run.recorder.errors!r}"

    @pytest.mark.asyncio
    async def test_send_audio_before_connect_and_after_close(
        self, provider: Any, config: ProviderConfig, speech_clip: bytes
    ) -> None:
        """``send_audio`` neither raises nor blocks before ``connect()``, after ``close()``,
        or on a session that is closed without ever connecting."""
        head = speech_clip[: 10 * FRAME_BYTES]
        async with self._session(provider, config) as run:
            await self._speak(run, head)  # before connect
            await bounded(run.session.connect(), self.connect_within_s, "connect()")
            await bounded(run.session.close(), self.close_within_s, "close()")
            await self._speak(run, head)  # after close
        async with self._session(provider, config) as never_connected:
            await self._speak(never_connected, head)
            await bounded(never_connected.session.close(), self.close_within_s, "close()")
            await self._speak(never_connected, head)

    @pytest.mark.asyncio
    async def test_send_audio_never_blocks_while_the_vendor_stalls(
        self,
        provider: Any,
        config: ProviderConfig,
        stalled_config: ProviderConfig | None,
        speech_clip: bytes,
    ) -> None:
        """As the host does it: ``connect()`` runs in the background (against a vendor that
        never answers, with ``stalled_config``) while every frame of the clip and a second of
        silence goes to ``send_audio``; each call returns within the bound and none raises.
        Then ``connect()`` is cancelled (it must stop) and ``close()`` returns."""
        async with self._session(provider, stalled_config or config) as run:
            connecting = asyncio.ensure_future(run.session.connect())
            await asyncio.sleep(0)
            await self._speak(run, speech_clip + b"\xff" * 8000)
            connecting.cancel()
            done, _ = await asyncio.wait([connecting], timeout=self.close_within_s)
            assert done, f"connect() did not stop within {self.close_within_s:g} s of a cancel"
            if not connecting.cancelled():
                connecting.exception()  # retrieved: a failed connect is fine here
            await bounded(run.session.close(), self.close_within_s, "close() after the cancel")

    @pytest.mark.asyncio
    async def test_clip_is_transcribed_and_flushed_by_close(
        self, provider: Any, config: ProviderConfig, speech_clip: bytes
    ) -> None:
        """``connect()``, the clip (no trailing silence), ``close()``: the finals reported
        before ``close()`` returned contain :attr:`clip_words`; ``on_error`` never fires."""
        _run, finals = await self._transcribe(provider, config, speech_clip, connect_first=True)
        self._check_words(finals)

    @pytest.mark.asyncio
    async def test_audio_sent_while_connecting_is_transcribed(
        self, provider: Any, config: ProviderConfig, speech_clip: bytes
    ) -> None:
        """The host's order: the clip is sent while ``connect()`` is still running, so audio
        before the vendor stream is open must be buffered, not lost."""
        _run, finals = await self._transcribe(provider, config, speech_clip, connect_first=False)
        self._check_words(finals)

    @pytest.mark.asyncio
    async def test_callbacks_arrive_on_the_event_loop_thread(
        self, provider: Any, config: ProviderConfig, speech_clip: bytes
    ) -> None:
        """Every callback of a transcription runs on the event loop's thread (a plugin with
        worker threads hands results over with ``loop.call_soon_threadsafe``)."""
        run, _finals = await self._transcribe(provider, config, speech_clip, connect_first=True)
        events = run.recorder.events
        assert events, "the clip produced no callback at all"
        elsewhere = [(e.kind, e.value) for e in events if e.thread != run.loop_thread]
        assert not elsewhere, f"callbacks called off the event loop thread: {elsewhere!r}"

    @pytest.mark.asyncio
    async def test_refused_connection_is_reported_as_provider_error(
        self, provider: Any, refused_config: ProviderConfig | None
    ) -> None:
        """With a vendor endpoint that refuses connections, ``connect()`` raises a
        :class:`~voicehost.ProviderError`, or returns and ``on_error`` gets one (then the
        session is not ``connected``); any other exception, or nothing within the bound,
        fails. Audio sent afterwards is still accepted silently."""
        if refused_config is None:
            pytest.skip("no `refused_config` fixture given (a config with a refusing endpoint)")
        async with self._session(provider, refused_config) as run:
            within = self.refused_within_s
            try:
                async with asyncio.timeout(within) as deadline:
                    await run.session.connect()
            except ProviderError:
                pass
            except TimeoutError as exc:
                if deadline.expired():
                    pytest.fail(f"connect() to a refusing endpoint hung for {within:g} s")
                pytest.fail(f"connect() raised {exc!r}, not a voicehost.ProviderError")
            except Exception as exc:
                pytest.fail(f"connect() raised {exc!r}, not a voicehost.ProviderError")
            else:
                reported = await run.recorder.wait_for(lambda: bool(run.recorder.errors), within)
                assert reported, (
                    f"connect() returned and on_error was not called within {within:g} s"
                )
                wrong = [e for e in run.recorder.errors if not isinstance(e, ProviderError)]
                assert not wrong, f"on_error got {wrong!r}, not voicehost.ProviderError"
                assert run.session.connected is False, "connected is True after the refusal"
            await self._speak(run, b"\xff" * (5 * FRAME_BYTES))


# --- text to speech ------------------------------------------------------------------------
