"""``voicehost simulate`` with fake providers registered through the real plugin host: turns
printed with timings (or as JSON), the call written as a two-track WAV on its timeline, the
call recorded, ``--say`` voiced by the ``piper`` provider, exit 2 when the bot never answers.
"""

from __future__ import annotations

import json
import wave
from typing import ClassVar, Literal

import numpy as np
import pytest
import soundfile
from click.testing import CliRunner
from pydantic import Field

import voicehost.plugins
from voicehost.app import assembly
from voicehost.cli import cli
from voicehost.hookspecs import hookimpl
from voicehost.records import read_calls
from voicehost.simulate.command import input_order, simulate
from voicehost.testing.providers import FakeProvidersPlugin, FakeSpeechProvider, FakeTTSConfig


def write_tone_wav(path, seconds: float, rate: int = 16000) -> None:
    t = np.arange(int(rate * seconds)) / rate
    pcm = (0.4 * np.sin(2 * np.pi * 300 * t) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(pcm.tobytes())


class PiperLikeConfig(FakeTTSConfig):
    """The fake ``piper``: PCM16 24 kHz (so ``--say`` converts), 40 ms a character (the 19
    characters of each text below: 38 frames, heard as one turn by the fake STT's 40)."""

    format: Literal["mulaw", "pcm16"] = Field("pcm16")
    ms_per_char: float = Field(40, ge=0)


class FakePiper(FakeSpeechProvider):
    id: ClassVar[str] = "piper"
    config_class: ClassVar[type[PiperLikeConfig]] = PiperLikeConfig


class FakePiperPlugin:
    def __init__(self) -> None:
        self.tts = FakePiper()

    @hookimpl
    def register_speech_providers(self, register) -> None:
        register(self.tts)


@pytest.fixture
def fake_plugins(monkeypatch):
    """Every plugin host the CLI loads also gets the fake STT/TTS plugin, in-process; no
    installed plugin loads (so the fake ``piper`` below is the only one)."""
    real = voicehost.plugins.load_plugin_host
    plugin = FakeProvidersPlugin()
    extra: list[tuple[object, str]] = []

    def load_with_fakes(*args, **kwargs):
        host = real(*args, **kwargs)
        host.register(plugin, name="voicehost-fakes")
        for other, name in extra:
            host.register(other, name=name)
        return host

    monkeypatch.setenv("VOICEHOST_LOAD_PLUGINS", "")
    monkeypatch.delenv("TWILIO_AUTH_TOKEN", raising=False)
    monkeypatch.setattr(voicehost.plugins, "load_plugin_host", load_with_fakes)
    monkeypatch.setattr(assembly, "load_plugin_host", load_with_fakes)  # imported by name there
    plugin.extra = extra  # type: ignore[attr-defined]
    return plugin


@pytest.fixture
def write_config(tmp_path):
    """``write_config(final_text=..., greeting=..., frames=...)`` → (plugins.toml, calls.db)."""

    def write(
        *, final_text: str = "what are your hours", greeting: str | None = None, frames: int = 40
    ):
        db = tmp_path / "calls.db"
        path = tmp_path / "plugins.toml"
        greeting_table = (
            f"[responder.scripted]\ngreeting = {json.dumps(greeting)}\n"
            if greeting is not None
            else ""
        )
        path.write_text(
            f"""
[plugins]
enabled = []                      # no entry-point plugins: only the fakes and built-ins

[stt]
provider = "fake"
[stt.fake]
final_after_frames = {frames}     # the 0.8 s tone = 40 frames → one final transcript
final_text = "{final_text}"

[tts]
provider = "fake"
[tts.fake]
ms_per_char = 5

[responder]
provider = "scripted"
{greeting_table}
[records]
path = "{db}"
"""
        )
        return path, db

    return write


@pytest.fixture
def config(write_config):
    return write_config()


def test_simulate_local_fast_prints_turns_and_writes_the_call(
    fake_plugins, config, tmp_path, monkeypatch
):
    from voicehost.simulate import caller

    config_path, db = config
    preloaded = []
    real_preload = caller.preload_providers

    def preload(runtime):
        preloaded.append((runtime.stt.id, runtime.tts.id))
        real_preload(runtime)

    monkeypatch.setattr(caller, "preload_providers", preload)
    wav = tmp_path / "caller.wav"
    write_tone_wav(wav, 0.8)
    out = tmp_path / "reply.wav"
    result = CliRunner().invoke(
        cli,
        [
            "simulate",
            str(wav),
            str(wav),
            "--local",
            "--fast",
            "--pause-ms",
            "0",
            "--config",
            str(config_path),
            "--out",
            str(out),
            "--no-progress",
        ],
    )
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert preloaded == [("fake", "fake")]  # models load before the call, as serve does
    lines = result.output.splitlines()
    assert lines[0] == "greeting"
    assert any("greeting text at" in line and "voicehost demo line" in line for line in lines)
    finals = [line for line in lines if "final transcript at" in line]
    assert len(finals) == 2 and all("'what are your hours'" in line for line in finals)
    replies = [line for line in lines if "reply text at" in line and "Monday to Friday" in line]
    assert len(replies) == 2
    first_audio = [line for line in lines if "first audio at" in line]
    assert len(first_audio) == 3  # greeting + two replies
    assert "after the caller stopped" in first_audio[1]
    assert "ended by the caller" in lines[-1] and "reply.wav" in lines[-1]

    with wave.open(str(out), "rb") as call_wav:  # caller left, bot right
        assert (call_wav.getframerate(), call_wav.getsampwidth(), call_wav.getnchannels()) == (
            8000,
            2,
            2,
        )
    data, _ = soundfile.read(str(out), dtype="int16")
    caller_track, bot_track = data[:, 0], data[:, 1]
    assert np.count_nonzero(bot_track) > 8000 * 0.5  # greeting + two replies of fake speech
    assert np.count_nonzero(caller_track) > 8000 * 1.5  # two 0.8 s tones

    (call,) = read_calls(db)
    assert call["turn_count"] == 5 and call["end_reason"] == "caller-hangup"
    shown = CliRunner().invoke(cli, ["calls", "show", call["call_sid"], "--json", "--db", str(db)])
    assert [t["kind"] for t in json.loads(shown.output)["turns"]] == [
        "greeting",
        "final",
        "reply",
        "final",
        "reply",
    ]


def loud(track: np.ndarray, start_ms: float, end_ms: float) -> bool:
    """Whether any sample of ``track`` between the two times is not silent."""
    return bool(np.abs(track[round(start_ms * 8) : round(end_ms * 8)]).max(initial=0) > 200)


def test_out_places_each_side_on_the_call_timeline(fake_plugins, config, tmp_path):
    """Real-time pace: the caller's file sits where it was played, each bot reply starts at
    the sample of its first audio's arrival (the ms figures printed are WAV positions)."""
    config_path, _ = config
    wav = tmp_path / "caller.wav"
    write_tone_wav(wav, 0.8)
    out = tmp_path / "call.wav"
    result = CliRunner().invoke(
        cli,
        [
            "simulate",
            str(wav),
            "--local",
            "--pause-ms",
            "0",
            "--config",
            str(config_path),
            "--out",
            str(out),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output + repr(result.exception)
    report = json.loads(result.stdout)
    greeting, turn = report["turns"]
    data, rate = soundfile.read(str(out), dtype="int16")
    assert rate == 8000
    caller_track, bot_track = data[:, 0], data[:, 1]

    # the greeting: nothing before its first audio, audio right from it, for its length
    start = round(greeting["first_audio_ms"] * 8)
    assert not bot_track[:start].any() and bot_track[start : start + 80].any()
    assert loud(bot_track, greeting["first_audio_ms"], greeting["first_audio_ms"] + 200)
    # the caller's tone, played at real-time pace after the greeting (its frames may queue
    # behind the line's silence by up to a frame and the jitter allowance: 100 ms margins)
    assert not loud(caller_track, 0, turn["caller_start_ms"] - 100)
    assert loud(caller_track, turn["caller_start_ms"] + 100, turn["caller_end_ms"] - 100)
    assert not loud(caller_track, turn["caller_end_ms"] + 100, len(caller_track) / 8)
    # the reply: silent from the caller's end to its first audio, which starts at its sample
    reply_start = round(turn["first_audio_ms"] * 8)
    assert turn["first_audio_ms"] > turn["caller_end_ms"]
    greeting_end_ms = greeting["first_audio_ms"] + greeting["audio_ms"]
    assert not loud(bot_track, greeting_end_ms + 40, turn["first_audio_ms"])
    assert not bot_track[round(turn["caller_end_ms"] * 8) : reply_start].any()
    assert bot_track[reply_start : reply_start + 80].any()
    heard = np.count_nonzero(np.abs(bot_track[reply_start:]) > 200) / 8
    assert heard == pytest.approx(turn["audio_ms"], rel=0.1)


def test_json_prints_the_turns_and_nothing_else(fake_plugins, config, tmp_path):
    config_path, _ = config
    wav = tmp_path / "hours.wav"
    write_tone_wav(wav, 0.8)
    result = CliRunner().invoke(
        cli,
        [
            "simulate",
            str(wav),
            "--local",
            "--fast",
            "--pause-ms",
            "0",
            "--config",
            str(config_path),
            "--json",
            "--no-progress",
        ],
    )
    assert result.exit_code == 0, result.output + repr(result.exception)
    report = json.loads(result.stdout)  # the whole of stdout is one JSON document
    assert report["call_sid"].startswith("CA") and len(report["call_sid"]) == 34
    assert report["bot_answered"] is True and report["hung_up_by_bot"] is False
    assert report["records_available"] is True and report["out"] is None
    assert report["bot_audio_ms"] > 0
    greeting, turn = report["turns"]
    assert greeting["input"] is None and greeting["caller_start_ms"] is None
    assert [r["kind"] for r in greeting["records"]] == ["greeting"]
    assert turn["input"] == "hours.wav"
    assert set(turn) == {
        "input",
        "caller_start_ms",
        "caller_end_ms",
        "first_audio_ms",
        "response_ms",
        "reply_end_ms",
        "audio_ms",
        "records",
    }
    assert turn["response_ms"] == pytest.approx(
        turn["first_audio_ms"] - turn["caller_end_ms"], abs=0.2
    )
    assert [(r["role"], r["kind"]) for r in turn["records"]] == [
        ("caller", "final"),
        ("bot", "reply"),
    ]
    assert turn["records"][0]["text"] == "what are your hours"
    assert "Monday to Friday" in turn["records"][1]["text"]


def test_a_bot_that_hangs_up_is_reported(fake_plugins, write_config, tmp_path):
    config_path, _ = write_config(final_text="goodbye")
    wav = tmp_path / "bye.wav"
    write_tone_wav(wav, 0.8)
    args = ["simulate", str(wav), str(wav), "--local", "--fast", "--config", str(config_path)]
    result = CliRunner().invoke(cli, [*args, "--json", "--no-progress"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["hung_up_by_bot"] is True
    assert len(report["turns"]) == 2  # the greeting and the goodbye; the second file unplayed
    assert "Goodbye" in report["turns"][1]["records"][-1]["text"]
    text = CliRunner().invoke(cli, [*args, "--no-progress"])
    assert text.exit_code == 0 and "hung up by the bot" in text.output.splitlines()[-1]


def test_a_bot_that_never_answers_exits_2(fake_plugins, write_config, tmp_path):
    config_path, _ = write_config(greeting="", frames=0)  # no greeting, no transcript
    wav = tmp_path / "a.wav"
    write_tone_wav(wav, 0.3)
    args = ["simulate", str(wav), "--local", "--fast", "--config", str(config_path)]
    quick = ["--greeting-timeout", "0.3", "--reply-timeout", "0.3", "--no-progress"]
    result = CliRunner().invoke(cli, [*args, *quick])
    assert result.exit_code == 3, result.output
    assert "the bot never answered" in result.stderr
    assert "no reply audio" in result.stdout  # the turn lines still say what happened
    as_json = CliRunner().invoke(cli, [*args, *quick, "--json"])
    assert as_json.exit_code == 3
    report = json.loads(as_json.stdout)
    assert report["bot_answered"] is False and report["bot_audio_ms"] == 0
    (turn,) = report["turns"]  # no greeting turn; the file's turn without a reply
    assert turn["input"] == "a.wav" and turn["first_audio_ms"] is None


def test_say_voices_the_caller_with_the_piper_provider_in_command_line_order(
    fake_plugins, config, tmp_path
):
    piper = FakePiperPlugin()
    fake_plugins.extra.append((piper, "voicehost-fake-piper"))
    config_path, _ = config
    wav = tmp_path / "tone.wav"
    write_tone_wav(wav, 0.8)
    out = tmp_path / "call.wav"
    result = CliRunner().invoke(
        cli,
        [
            "simulate",
            "--say",
            "what are your hours",
            str(wav),
            "--local",
            "--say=who are you today",
            "--fast",
            "--pause-ms",
            "0",
            "--config",
            str(config_path),
            "--json",
            "--out",
            str(out),
            "--no-progress",
        ],
    )
    assert result.exit_code == 0, result.output + repr(result.exception)
    report = json.loads(result.stdout)
    assert [t["input"] for t in report["turns"]] == [
        None,
        '"what are your hours"',
        "tone.wav",
        '"who are you today"',
    ]
    assert [s.text for s in piper.tts.syntheses] == ["what are your hours", "who are you today"]
    for turn in report["turns"][1:]:  # every input was heard and answered, once
        assert [r["kind"] for r in turn["records"]] == ["final", "reply"]
    # 19 characters × 40 ms of the fake voice's 440 Hz tone, converted to μ-law 8 kHz
    spoken = report["turns"][1]
    assert spoken["caller_end_ms"] - spoken["caller_start_ms"] < 500  # --fast
    data, _ = soundfile.read(str(out), dtype="int16")
    start = round(spoken["caller_start_ms"] * 8)
    voiced = data[start : start + 6080, 0].astype(np.float32)
    spectrum = np.abs(np.fft.rfft(voiced))
    assert abs(np.argmax(spectrum) * 8000 / len(voiced) - 440) < 5


def test_say_without_a_piper_provider_is_a_clear_error(fake_plugins, tmp_path):
    result = CliRunner().invoke(cli, ["simulate", "--say", "hello", "--url", "http://127.0.0.1:9"])
    assert result.exit_code == 1
    assert "--say needs the offline TTS provider 'piper'" in result.stderr
    assert "Traceback" not in result.output


def test_inputs_keep_their_command_line_order():
    args = ["a.wav", "--say", "x", "--out", "o.wav", "b.wav", "--say=y", "--fast", "--url=u"]
    args += ["--config", "c.toml", "c.wav", "--", "--odd-name.wav"]
    assert input_order(args, simulate) == ["file", "say", "file", "say", "file", "file"]


def test_simulate_needs_an_input_and_one_target(tmp_path, monkeypatch):
    from voicehost.simulate import command as simulate_module

    nothing = CliRunner().invoke(cli, ["simulate", "--local"])
    assert nothing.exit_code == 2 and "give at least one AUDIO file or --say TEXT" in nothing.output

    wav = tmp_path / "a.wav"
    write_tone_wav(wav, 0.1)
    # With neither --url nor --local it dials where `voicehost serve` listens by default;
    # nothing listens at the patched address, so it fails with a clear error naming it.
    monkeypatch.setattr(simulate_module, "DEFAULT_URL", "http://127.0.0.1:9")
    neither = CliRunner().invoke(cli, ["simulate", str(wav)])
    assert neither.exit_code == 1, neither.output
    assert "127.0.0.1:9" in neither.output
    both = CliRunner().invoke(cli, ["simulate", str(wav), "--local", "--url", "http://x"])
    assert both.exit_code == 2


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"RIFF nonsense", "not a readable audio file (WAV, FLAC, …): format not recognised"),
        (None, "no such file"),
    ],
)
def test_simulate_bad_audio_is_a_one_line_error(tmp_path, content, problem):
    path = tmp_path / "junk.wav"
    if content is not None:
        path.write_bytes(content)
    result = CliRunner().invoke(cli, ["simulate", str(path), "--url", "http://127.0.0.1:9"])
    assert result.exit_code == 1
    assert result.stderr == f"Error: {path}: {problem}\n"


def test_simulate_unreachable_server_is_a_clear_error(tmp_path):
    wav = tmp_path / "a.wav"
    write_tone_wav(wav, 0.1)
    result = CliRunner().invoke(cli, ["simulate", str(wav), "--url", "http://127.0.0.1:9"])
    assert result.exit_code == 1 and "cannot reach the server" in result.output


@pytest.fixture
def signed_server(tmp_path):
    """A server built as ``serve`` builds it, with the fake providers, checking webhook
    signatures with token "s3cret", run on its own event loop in a thread (the CLI runs its
    own loop); yields its base URL."""
    import asyncio
    import threading

    from aiohttp import web

    from voicehost.app.assembly import build_serve_app, load_app_config
    from voicehost.plugins import PluginHost

    path = tmp_path / "plugins.toml"
    path.write_text(
        f"""
[stt]
provider = "fake"
[stt.fake]
final_after_frames = 40
final_text = "who are you"
[tts]
provider = "fake"
[tts.fake]
ms_per_char = 5
[responder]
provider = "scripted"
[server]
public_url = "https://voice.example.com"
[twilio]
auth_token = "s3cret"
[records]
path = "{tmp_path / "calls.db"}"
"""
    )
    host = PluginHost()
    host.load_builtins()
    host.register(FakeProvidersPlugin(), name="voicehost-fakes")
    app_config = load_app_config(str(path), host=host)
    ready = threading.Event()
    state: dict = {}

    async def serve() -> None:
        runner = web.AppRunner(build_serve_app(app_config))
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        state["url"] = f"http://127.0.0.1:{runner.addresses[0][1]}"
        state["stop"] = asyncio.Event()
        ready.set()
        await state["stop"].wait()
        await runner.cleanup()

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    assert ready.wait(30)
    yield state["url"]
    loop.call_soon_threadsafe(state["stop"].set)
    thread.join(30)


def test_simulate_url_signs_the_webhook_with_the_auth_token(signed_server, tmp_path):
    wav = tmp_path / "caller.wav"
    write_tone_wav(wav, 0.8)
    common = [
        "simulate",
        str(wav),
        "--url",
        signed_server,
        "--public-url",
        "https://voice.example.com",
        "--fast",
        "--no-progress",
    ]
    ok = CliRunner().invoke(cli, [*common, "--auth-token", "s3cret"])
    assert ok.exit_code == 0, ok.output
    assert "final transcript at" in ok.output and "voicehost demo assistant" in ok.output
    wrong = CliRunner().invoke(cli, [*common, "--auth-token", "wrong"])
    assert wrong.exit_code == 1 and "403" in wrong.output
