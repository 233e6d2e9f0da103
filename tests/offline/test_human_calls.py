"""Whisper on real human recordings played as phone calls (``tests/data/human``, from codec2's
test data: Harvard sentences read in a studio, an amateur-radio monologue over a headset).

Each clip is carried as a call carries it — μ-law 8 kHz, 20 ms frames — into a Whisper STT
session with the default config, faster than real time (the session decides in audio time),
after 500 ms of line silence and followed by 1.2 s of it. The session is judged against two
yardsticks that never use its VAD: the clip's own energy (``human_audio.Energy``: where the
caller is audibly speaking) and a batch decode of the whole clip by the same model.

One clip also goes through the real server and the Twilio simulator with the default offline
stack (Whisper, Piper, scripted responder).
"""

from __future__ import annotations

import asyncio
import itertools
import math
import time
from collections.abc import Iterator
from pathlib import Path

import attrs
import numpy as np
import pytest
from aiohttp import web
from human_audio import DATA_DIR, Clip, batch_transcribe, load_clips, normalise, wer
from offline_helpers import FRAME, Recorder, silence

from voicehost.contracts import TranscriptionRequest
from voicehost_whisper_stt import WhisperConfig, WhisperProvider, WhisperSession
from voicehost_whisper_stt.engine import Transcript, WhisperEngine
from voicehost_whisper_stt.finals import FinalTiming

LEAD_MS = 500  # line silence before the clip
TAIL_MS = 1200  # and after it: more than min_silence_ms, so the last utterance ends
MIN_SILENCE_MS = WhisperConfig().min_silence_ms

#: on_speech_start may come this long after the clip's first voiced 10 ms: the onset rule
#: needs min_speech_ms (96) of voiced audio, then come the 20 ms frame, the resampler's delay
#: and Silero's rise on a soft onset. Measured with the default config: 80–160 ms.
ONSET_TOLERANCE_MS = WhisperConfig().min_speech_ms + 84
#: Streamed finals joined vs one batch decode of the whole clip (same model, same beam): what
#: segmenting, pre/post-roll and context may cost. Measured: 0 % on the answers and on
#: the Harvard sentences 2 %, the radio monologue 7 % ("TS2000" streamed as "T.S. 2000").
#: On an AMD EPYC machine the same code and weights score the monologue 16.7 %: a 0.9 s
#: hesitation there splits "And I'm using a... Kenwood" into two finals, and "T.S. 2000"
#: (3 words after normalising, vs "TS2000") and "yaggies" follow from the new context. No
#: word is lost (test_no_speech_falls_between_segments checks that separately).
#: With the old threshold of 0.5 the Harvard sentences scored 25 % (a sentence lost).
STREAM_VS_BATCH_WER = 0.2
#: Vs the hand-checked reference. Measured (tiny.en, beam 5): answers 0 %, Harvard sentences
#: 9.6 % (tiny.en hears "chicken is a red dish", "Much the soldiers passed"; the batch decode
#: makes the same errors, 11.5 %), the radio monologue 9.8 %; 7 % over all clips. tiny.en
#: is touchy on a short clip: shifted by a few ms on the line, "big dog left to chew" may
#: become "left at you" (30 % on that clip), so answers are scored together.
REFERENCE_WER_MONOLOGUE = 0.25
REFERENCE_WER_ANSWERS = 0.15
REFERENCE_WER_ALL = 0.12


@attrs.frozen(eq=False)
class Decode:
    """One engine call during a streamed clip."""

    final: bool
    prompt: str | None
    text: str
    samples: int  # 16 kHz samples decoded


@attrs.frozen(eq=False)
class Streamed:
    """What a clip played as a call produced."""

    clip: Clip
    recorder: Recorder
    timings: list[FinalTiming]
    decodes: list[Decode]

    def finals(self) -> list[str]:
        return self.recorder.texts("final")

    def start_ms(self) -> list[float]:
        """Clip time (ms) at which each on_speech_start fired (the audio fed by then)."""
        return [event[-1] / 8 - LEAD_MS for event in self.recorder.of("start")]

    def decode_of(self, text: str) -> Decode:
        """The final decode that produced the reported ``text`` (the last such)."""
        return [d for d in self.decodes if d.final and d.text == text][-1]


async def _play(clip: Clip, decodes: list[Decode]) -> Streamed:
    recorder = Recorder()
    session = WhisperProvider().create_session(
        TranscriptionRequest(WhisperConfig(), recorder.callbacks(), call_sid=f"CA{clip.name}")
    )
    await session.connect()
    first = len(decodes)
    stream = silence(LEAD_MS) + clip.ulaw + silence(TAIL_MS)
    for start in range(0, len(stream), FRAME):
        frame = stream[start : start + FRAME]
        session.send_audio(frame)
        recorder.position += len(frame)
        await asyncio.sleep(0)  # let the drain run, so events land on their frame
    await session.close()
    assert isinstance(session, WhisperSession)
    return Streamed(clip, recorder, list(session.final_timings), decodes[first:])


@pytest.fixture(scope="module")
def clips() -> list[Clip]:
    return load_clips()


@pytest.fixture(scope="module")
def streamed(clips: list[Clip], whisper_loaded: None) -> Iterator[dict[str, Streamed]]:
    """Every clip played once through its own session, with each engine call recorded."""
    decodes: list[Decode] = []
    original = WhisperEngine.transcribe

    def spy(self: WhisperEngine, audio: np.ndarray, **kwargs: object) -> Transcript:
        result = original(self, audio, **kwargs)  # type: ignore[arg-type]
        final = bool(kwargs.get("final", True))
        decodes.append(Decode(final, kwargs.get("prompt"), result.text, len(audio)))  # type: ignore[arg-type]
        return result

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(WhisperEngine, "transcribe", spy)

        async def play_all() -> dict[str, Streamed]:
            return {clip.name: await _play(clip, decodes) for clip in clips}

        yield asyncio.run(play_all())


@pytest.fixture(scope="module")
def batch(clips: list[Clip], whisper_loaded: None) -> dict[str, str]:
    """Each whole clip decoded at once by the same model and beam."""
    return {clip.name: batch_transcribe(clip.ulaw) for clip in clips}


def of_kind(streamed: dict[str, Streamed], kind: str) -> list[Streamed]:
    picked = [s for s in streamed.values() if s.clip.kind == kind]
    assert picked, f"tests/data/human has no {kind} clip"
    return picked


# --- the recordings ------------------------------------------------------------------------


def test_every_clip_is_documented_and_has_speech(clips: list[Clip]) -> None:
    readme = (DATA_DIR / "README.md").read_text(encoding="utf-8")
    assert {c.kind for c in clips} == {"answer", "monologue"}
    for clip in clips:
        assert f"{clip.name}.wav" in readme
        assert normalise(clip.reference)
        assert 0 <= clip.energy.first_onset_ms < clip.energy.last_end_ms <= clip.duration_ms
    total = sum(path.stat().st_size for path in Path(DATA_DIR).glob("*.wav"))
    assert total < 1_100_000  # the set stays small


# --- behaviour on real speech --------------------------------------------------------------


def test_speech_start_fires_at_the_first_word(streamed: dict[str, Streamed]) -> None:
    for result in streamed.values():
        starts = result.start_ms()
        assert starts, result.clip.name
        delay = starts[0] - result.clip.energy.first_onset_ms
        assert 0 <= delay <= ONSET_TOLERANCE_MS, (result.clip.name, delay)


def test_short_answers_give_exactly_one_final(streamed: dict[str, Streamed]) -> None:
    for result in of_kind(streamed, "answer"):
        assert len(result.finals()) == 1, (result.clip.name, result.finals())
        assert len(result.recorder.of("start")) == 1, result.clip.name
        assert not result.recorder.of("error")


def test_monologues_are_cut_only_at_real_pauses(streamed: dict[str, Streamed]) -> None:
    for result in of_kind(streamed, "monologue"):
        clip, finals = result.clip, result.finals()
        pauses = len(clip.energy.utterances(MIN_SILENCE_MS)) - 1
        assert pauses >= 1, clip.name  # the clip has pauses long enough to end a turn
        assert len(finals) > 1, (clip.name, finals)
        assert len(finals) <= len(clip.energy.utterances(300)), (clip.name, finals)
        assert [t.reason for t in result.timings] == ["silence"] * len(finals)
        for timing, text in zip(result.timings, finals, strict=True):
            decode = result.decode_of(text)
            end_ms = timing.start_ms - LEAD_MS + decode.samples / 16
            # The utterance's audio ends in a quiet stretch, not inside a word …
            assert clip.energy.voiced_between(end_ms - 30, end_ms + 30) == 0, (clip.name, text)
            # … and its endpoint came after a real pause of min_silence_ms (give or take the
            # VAD's lag and a frame at either end).
            endpoint = timing.endpoint_ms - LEAD_MS
            pause = (endpoint - MIN_SILENCE_MS + 150, endpoint - 20)
            assert clip.energy.voiced_between(*pause) == 0, (clip.name, text, pause)


def test_no_speech_falls_between_segments(streamed: dict[str, Streamed]) -> None:
    for result in streamed.values():
        clip = result.clip
        spans = []
        for timing, text in zip(result.timings, result.finals(), strict=True):
            start = timing.start_ms - LEAD_MS
            spans.append((start, start + result.decode_of(text).samples / 16))
        covered = np.zeros(len(clip.energy.voiced), dtype=bool)
        for start, end in spans:
            covered[max(0, int(start // 10)) : math.ceil(end / 10)] = True
        lost_ms = int((clip.energy.voiced & ~covered).sum()) * 10
        assert lost_ms == 0, (clip.name, lost_ms, spans)


def test_streamed_finals_match_a_whole_clip_decode(
    streamed: dict[str, Streamed], batch: dict[str, str]
) -> None:
    for name, result in streamed.items():
        joined = " ".join(result.finals())
        score = wer([batch[name]], [joined])
        assert score <= STREAM_VS_BATCH_WER, (name, score, batch[name], joined)


def test_transcripts_match_the_references(streamed: dict[str, Streamed]) -> None:
    def score(results: list[Streamed]) -> float:
        return wer([r.clip.reference for r in results], [" ".join(r.finals()) for r in results])

    for result in of_kind(streamed, "monologue"):
        assert score([result]) <= REFERENCE_WER_MONOLOGUE, (result.clip.name, result.finals())
    answers = of_kind(streamed, "answer")
    assert score(answers) <= REFERENCE_WER_ANSWERS, [r.finals() for r in answers]
    assert score(list(streamed.values())) <= REFERENCE_WER_ALL


def test_each_final_is_decoded_with_the_previous_one_as_context(
    streamed: dict[str, Streamed],
) -> None:
    for result in of_kind(streamed, "monologue"):
        finals = result.finals()
        assert not result.decode_of(finals[0]).prompt
        for previous, final in itertools.pairwise(finals):
            assert result.decode_of(final).prompt == previous, (result.clip.name, final)


# --- through the real server ---------------------------------------------------------------


def _observing_handler(base: object) -> object:
    """The serve handler, noting each final (wall clock, text) and speech start."""
    from voicehost.conversation import ResponderCallHandler

    class Observing(ResponderCallHandler):
        finals: list[tuple[float, str]]
        speech_starts: list[float]
        changed: asyncio.Event

        async def on_transcript(self, call, text):  # type: ignore[no-untyped-def]
            self.finals.append((time.monotonic(), text))
            self.changed.set()
            await super().on_transcript(call, text)

        async def on_speech_start(self, call):  # type: ignore[no-untyped-def]
            self.speech_starts.append(time.monotonic())
            await super().on_speech_start(call)

    handler = Observing(base.responder, base.store)  # type: ignore[attr-defined]
    handler.finals, handler.speech_starts, handler.changed = [], [], asyncio.Event()
    return handler


@pytest.mark.slow
async def test_a_monologue_through_the_server_with_the_offline_stack(
    clips: list[Clip],
    batch: dict[str, str],
    streamed: dict[str, Streamed],
    tmp_path: Path,
) -> None:
    from voicehost.app.assembly import build_serve_app, create_handler, load_app_config
    from voicehost.config import Settings
    from voicehost.testing import TwilioSimulator

    clip = next(c for c in clips if c.name == "ve9qrp_monologue")
    settings = Settings.from_dict(
        {
            "stt": {"provider": "whisper"},
            "tts": {"provider": "piper"},
            "responder": {"provider": "scripted"},
            "records": {"path": str(tmp_path / "calls.db")},
            "plugins": {"enabled": ["voicehost-whisper-stt", "voicehost-piper-tts"]},
        }
    )
    config = load_app_config(settings=settings)
    handler = _observing_handler(create_handler(config))
    app = build_serve_app(config, handler_factory=lambda _config: handler)  # type: ignore[arg-type,return-value]
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        async with TwilioSimulator(f"http://{host}:{port}", speed=math.inf) as sim:
            call = await sim.start_call()
            await call.wait_for_audio(seconds=0.5, timeout=60)  # the greeting plays
            await call.play(silence(LEAD_MS) + clip.ulaw + silence(TAIL_MS))
            expected = len(streamed[clip.name].finals())  # the same frames, the same cuts
            while len(handler.finals) < expected:
                handler.changed.clear()
                await asyncio.wait_for(handler.changed.wait(), 90)
            last_final = handler.finals[-1][0]
            # The bot answers the last final: half a second of reply audio after it.
            await call.wait_for(
                lambda: sum(t > last_final for t in call.frame_times) >= 25, timeout=60
            )
            await call.stop()
    finally:
        await runner.cleanup()

    texts = [text for _, text in handler.finals]
    assert len(texts) > 1
    assert wer([batch[clip.name]], [" ".join(texts)]) <= STREAM_VS_BATCH_WER, texts
    assert len(handler.speech_starts) >= len(texts)
    assert not call.protocol_errors
