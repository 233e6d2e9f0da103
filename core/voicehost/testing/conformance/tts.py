"""The text-to-speech conformance tests. See :mod:`voicehost.testing.conformance`."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any, ClassVar

import pytest

from voicehost.audio import AudioConverter
from voicehost.config_model import ProviderConfig
from voicehost.contracts import (
    MULAW_8K,
    AudioFormat,
    SpeechProvider,
)
from voicehost.errors import ProviderError
from voicehost.testing.conformance.base import _ProviderChecks
from voicehost.testing.conformance.support import (
    Signal,
    bounded,
    collect,
    measure,
    misreadings,
    reframe,
)


class SpeechConformance(_ProviderChecks):
    """The text-to-speech contract (:class:`~voicehost.SpeechProvider`), as tests.

    A complete test module::

        import pytest

        from voicehost.testing.conformance import SpeechConformance, config_from_table
        from voicehost_mytts import MyTTSProvider


        class TestMyTTS(SpeechConformance):
            config_table = {"api_key": "test-key", "base_url": "http://127.0.0.1:8765"}

            @pytest.fixture
            def provider(self):
                return MyTTSProvider()

            @pytest.fixture
            def failing_config(self, provider, refusing_url):
                return config_from_table(provider, {"api_key": "k", "base_url": refusing_url})

    Fixtures to override: ``provider`` (required), ``config`` (default: :attr:`config_table`
    parsed) and ``failing_config`` (default None: the vendor-failure test is skipped; give a
    config whose vendor refuses or breaks the request — a refusing endpoint, a wrong key).

    What "the declared format is what comes out" means here: the bytes are whole samples of
    ``output_format(config)`` (one of ``output_formats``), and decoded as that format they are
    a signal — at least :attr:`min_level_dbfs` loud, and tonal rather than noise-like
    (spectral flatness at most :attr:`max_flatness`), as speech and beeps are — and not much
    less tonal than the same bytes read as the other encoding or byte order
    (:func:`misreadings`), which look like noise. Set
    :attr:`expected_seconds` to also bound the length of :attr:`text` (which catches a wrong
    sample rate).

    ``aclose()`` must stop the stream "at once"; the contract's figure is 100 ms. The kit
    checks :attr:`aclose_within_s` (0.5 s by default), generous so that a busy test machine
    does not fail a correct provider, while a provider that waits for the vendor or for a
    model run to finish before it returns still fails.
    """

    provider_type: ClassVar[type] = SpeechProvider
    #: What is spoken by most tests.
    text: ClassVar[str] = "Hello, thanks for calling. How can I help you today?"
    #: Spoken by the cancellation tests: long enough to be cut off mid-stream.
    long_text: ClassVar[str] = " ".join(
        [
            "Thanks for calling. We are open Monday to Friday, from nine in the morning to",
            "five in the evening, and on Saturday from ten until two. If you would like to",
            "book a table, please tell me the day, the time and how many people are coming,",
            "and I will check what we have available for you.",
        ]
    )
    #: Text arriving in pieces, for ``synthesize_stream``.
    text_pieces: ClassVar[tuple[str, ...]] = ("Hello, than", "ks for calling. How can ", "I help?")
    #: ``(min, max)`` seconds of audio :attr:`text` may last; None: not checked.
    expected_seconds: ClassVar[tuple[float, float] | None] = None
    #: Quietest acceptable RMS level of the output, dBFS.
    min_level_dbfs: ClassVar[float] = -50.0
    #: Most spectral flatness of the decoded output (speech: about 0.2 at most; noise: 1).
    max_flatness: ClassVar[float] = 0.5
    #: Bound of a whole synthesis, s.
    synthesize_within_s: ClassVar[float] = 60.0
    #: Bound of ``aclose()`` / of a cancelled consumer finishing, s (see the class doc).
    aclose_within_s: ClassVar[float] = 0.5
    #: Bound for a failing vendor to raise, s.
    failure_within_s: ClassVar[float] = 30.0

    @pytest.fixture
    def failing_config(self, provider: Any, refusing_url: str) -> ProviderConfig | None:
        """A config whose vendor fails (e.g. ``base_url`` = ``refusing_url``); None skips."""
        return None

    async def _synthesize(self, stream: AsyncIterator[bytes]) -> list[bytes]:
        try:
            chunks = await collect(stream, self.synthesize_within_s, "synthesize()")
        finally:
            with contextlib.suppress(Exception):
                await stream.aclose()  # type: ignore[attr-defined]
        bad = sorted({type(c).__name__ for c in chunks if not isinstance(c, bytes | bytearray)})
        assert not bad, f"synthesize() yielded {bad}, not bytes"
        return [bytes(c) for c in chunks]

    def _check_audio(self, audio: bytes, fmt: AudioFormat, what: str) -> Signal:
        assert audio, f"{what} yielded no audio"
        width = fmt.sample_width * fmt.channels
        assert len(audio) % width == 0, (
            f"{what} yielded {len(audio)} bytes: not whole {width}-byte samples of {fmt}"
        )
        signal = measure(audio, fmt)
        assert signal.rms_dbfs >= self.min_level_dbfs, (
            f"{what}: decoded as {fmt} the audio is silent ({signal.rms_dbfs:.1f} dBFS)"
        )
        assert signal.flatness <= self.max_flatness, (
            f"{what}: decoded as {fmt} the audio is noise-like (spectral flatness "
            f"{signal.flatness:.2f}): is it really {fmt}?"
        )
        for reading, flatness in misreadings(audio, fmt).items():
            assert not (signal.flatness > 0.01 and flatness < signal.flatness / 2), (
                f"{what}: the audio is more tonal read as {reading} (spectral flatness "
                f"{flatness:.2f}) than as the declared {fmt} ({signal.flatness:.2f}): is it "
                f"really {fmt}?"
            )
        return signal

    def test_output_format_is_declared(self, provider: Any, config: ProviderConfig) -> None:
        """``output_format(config)`` is one of ``output_formats``, a format the host can
        convert to μ-law 8 kHz."""
        formats = provider.output_formats
        assert isinstance(formats, tuple) and formats, "output_formats must be a non-empty tuple"
        fmt = provider.output_format(config)
        assert fmt in formats, f"output_format(config) = {fmt} is not in {formats}"
        AudioConverter(fmt, MULAW_8K)  # raises ValueError for a format the host cannot play

    @pytest.mark.asyncio
    async def test_output_is_the_declared_format(
        self, provider: Any, config: ProviderConfig
    ) -> None:
        """Speaking :attr:`text` yields bytes that are whole samples of
        ``output_format(config)`` and, decoded as such, a loud enough, tonal signal (see the
        class doc); with :attr:`expected_seconds`, of a plausible length."""
        fmt = provider.output_format(config)
        chunks = await self._synthesize(provider.synthesize(self.text, config))
        signal = self._check_audio(b"".join(chunks), fmt, "synthesize()")
        if self.expected_seconds is not None:
            low, high = self.expected_seconds
            assert low <= signal.seconds <= high, (
                f"{signal.seconds:.2f} s of audio as {fmt}, expected {low:g}–{high:g} s: is "
                "the sample rate right?"
            )

    @pytest.mark.asyncio
    async def test_any_chunking_yields_the_same_frames(
        self, provider: Any, config: ProviderConfig
    ) -> None:
        """Chunk sizes carry no meaning: the provider's chunks, the audio in one piece and
        the audio cut into odd sizes (1, 3, 7, 160, 161 … bytes, PCM samples split) become
        the same μ-law 8 kHz frames through the host's converter and framer."""
        fmt = provider.output_format(config)
        chunks = await self._synthesize(provider.synthesize(self.text, config))
        whole = reframe(chunks, fmt, [sum(map(len, chunks)) or 1])
        assert whole, "synthesize() yielded no audio"
        assert reframe(chunks, fmt) == whole, "the provider's own chunking changed the audio"
        for sizes in ((1, 3, 7, 160, 161, 999), (2, 5, 13, 4097)):
            assert reframe(chunks, fmt, sizes) == whole, f"chunk sizes {sizes} changed the audio"

    @pytest.mark.asyncio
    async def test_aclose_stops_the_stream(self, provider: Any, config: ProviderConfig) -> None:
        """After the first chunk of :attr:`long_text`, ``aclose()`` returns within
        :attr:`aclose_within_s` and the iterator yields nothing more. ``aclose()`` before
        the first chunk is fine too."""
        unused = provider.synthesize(self.long_text, config)
        assert hasattr(unused, "aclose"), "synthesize() must return an iterator with aclose()"
        await bounded(unused.aclose(), self.synthesize_within_s, "aclose() before iterating")

        stream = provider.synthesize(self.long_text, config)
        try:
            await bounded(anext(stream), self.synthesize_within_s, "the first chunk")
        finally:
            started = time.monotonic()
            await bounded(stream.aclose(), self.synthesize_within_s, "aclose()")
            took = time.monotonic() - started
        assert took <= self.aclose_within_s, (
            f"aclose() took {took:.3f} s (bound {self.aclose_within_s:g} s): it must stop the "
            "vendor request at once, not wait for the rest"
        )
        with pytest.raises(StopAsyncIteration):
            await bounded(anext(stream), self.synthesize_within_s, "a chunk after aclose()")

    @pytest.mark.asyncio
    async def test_cancelling_the_consumer_stops_the_stream(
        self, provider: Any, config: ProviderConfig
    ) -> None:
        """A task iterating :attr:`long_text` is cancelled after the first chunk (the host
        does that on barge-in): it ends within :attr:`aclose_within_s`, with the
        cancellation (or its normal end, if the stream was already over), not another
        exception."""
        first = asyncio.Event()

        async def consume() -> None:
            stream = provider.synthesize(self.long_text, config)
            try:
                async for _chunk in stream:
                    first.set()
            finally:
                await stream.aclose()

        async def started() -> None:
            # Polled (5 ms): the consumer may also end (or fail) before any chunk.
            while not (first.is_set() or task.done()):  # noqa: ASYNC110
                await asyncio.sleep(0.005)

        task = asyncio.ensure_future(consume())
        try:
            await bounded(started(), self.synthesize_within_s, "the first chunk")
        finally:
            task.cancel()
            started = time.monotonic()
            done, _ = await asyncio.wait([task], timeout=self.synthesize_within_s)
            took = time.monotonic() - started
        assert done, "the cancelled consumer never finished"
        if not task.cancelled() and task.exception() is not None:
            pytest.fail(f"cancelling the consumer raised {task.exception()!r}")
        assert took <= self.aclose_within_s, (
            f"the cancelled consumer took {took:.3f} s to finish (bound {self.aclose_within_s:g} s)"
        )

    @pytest.mark.asyncio
    async def test_synthesize_stream_speaks_text_pieces(
        self, provider: Any, config: ProviderConfig
    ) -> None:
        """``synthesize_stream`` of :attr:`text_pieces` (words split across pieces) yields
        the declared format, as ``synthesize`` does."""

        async def pieces() -> AsyncIterator[str]:
            for piece in self.text_pieces:
                yield piece
                await asyncio.sleep(0)

        fmt = provider.output_format(config)
        chunks = await self._synthesize(provider.synthesize_stream(pieces(), config))
        self._check_audio(b"".join(chunks), fmt, "synthesize_stream()")

    @pytest.mark.asyncio
    async def test_vendor_failure_raises_provider_error(
        self, provider: Any, failing_config: ProviderConfig | None
    ) -> None:
        """With ``failing_config``, iterating ``synthesize()`` raises a
        :class:`~voicehost.ProviderError` within :attr:`failure_within_s`: not another
        exception, not a hang, not a quiet end."""
        if failing_config is None:
            pytest.skip("no `failing_config` fixture given (a config whose vendor fails)")
        within = self.failure_within_s
        stream: AsyncIterator[bytes] | None = None
        try:
            async with asyncio.timeout(within) as deadline:
                stream = provider.synthesize(self.text, failing_config)
                async for _chunk in stream:
                    pass
        except ProviderError:
            return
        except TimeoutError as exc:
            if deadline.expired():
                pytest.fail(f"synthesize() with a failing vendor hung for {within:g} s")
            pytest.fail(f"synthesize() raised {exc!r}, not a voicehost.ProviderError")
        except Exception as exc:
            pytest.fail(f"synthesize() raised {exc!r}, not a voicehost.ProviderError")
        finally:
            if stream is not None:
                with contextlib.suppress(Exception):
                    await stream.aclose()  # type: ignore[attr-defined]
        pytest.fail("synthesize() with a failing vendor ended without raising")


# --- responders ----------------------------------------------------------------------------
