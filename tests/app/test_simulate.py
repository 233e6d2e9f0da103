"""``voicehost simulate --local --fast`` with fake providers registered through the real
plugin host: turns printed with timings, the bot's audio written, the call recorded."""

from __future__ import annotations

import json
import wave

import numpy as np
import pytest
from click.testing import CliRunner

import voicehost.plugins
from voicehost.cli import cli
from voicehost.records import read_calls
from voicehost.testing.providers import FakeProvidersPlugin


def write_tone_wav(path, seconds: float, rate: int = 16000) -> None:
    t = np.arange(int(rate * seconds)) / rate
    pcm = (0.4 * np.sin(2 * np.pi * 300 * t) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(pcm.tobytes())


@pytest.fixture
def fake_plugins(monkeypatch):
    """Every plugin host the CLI loads also gets the fake STT/TTS plugin, in-process."""
    real = voicehost.plugins.load_plugin_host
    plugin = FakeProvidersPlugin()

    def load_with_fakes(*args, **kwargs):
        host = real(*args, **kwargs)
        host.register(plugin, name="voicehost-fakes")
        return host

    monkeypatch.setattr(voicehost.plugins, "load_plugin_host", load_with_fakes)
    return plugin


@pytest.fixture
def config(tmp_path):
    db = tmp_path / "calls.db"
    path = tmp_path / "plugins.toml"
    path.write_text(
        f"""
[plugins]
enabled = []                      # no entry-point plugins: only the fakes and built-ins

[stt]
provider = "fake"
[stt.fake]
final_after_frames = 40           # the 0.8 s tone = 40 frames → one final transcript
final_text = "what are your hours"

[tts]
provider = "fake"
[tts.fake]
ms_per_char = 5

[responder]
provider = "scripted"

[records]
path = "{db}"
"""
    )
    return path, db


def test_simulate_local_fast_prints_turns_and_writes_bot_audio(
    fake_plugins, config, tmp_path, monkeypatch
):
    from voicehost.server import commands

    config_path, db = config
    monkeypatch.delenv("TWILIO_AUTH_TOKEN", raising=False)
    preloaded = []
    real_preload = commands.preload_providers

    def preload(runtime):
        preloaded.append((runtime.stt.id, runtime.tts.id))
        real_preload(runtime)

    monkeypatch.setattr(commands, "preload_providers", preload)
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

    with wave.open(str(out), "rb") as reply:
        assert (reply.getframerate(), reply.getsampwidth(), reply.getnchannels()) == (8000, 2, 1)
        assert reply.getnframes() > 8000 * 0.5  # greeting + two replies of fake speech

    (call,) = read_calls(db)
    assert call["turn_count"] == 5 and call["end_reason"] == "stop"
    shown = CliRunner().invoke(cli, ["calls", "show", call["call_sid"], "--json", "--db", str(db)])
    assert [t["kind"] for t in json.loads(shown.output)["turns"]] == [
        "greeting",
        "final",
        "reply",
        "final",
        "reply",
    ]


def test_simulate_targets_the_default_server_or_exactly_one(tmp_path, monkeypatch):
    from voicehost import simulate as simulate_module

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


def test_simulate_bad_wav_is_a_clear_error(tmp_path):
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"RIFF nonsense")
    result = CliRunner().invoke(cli, ["simulate", str(junk), "--url", "http://127.0.0.1:9"])
    assert result.exit_code == 1 and "not an integer PCM WAV" in result.output


def test_simulate_unreachable_server_is_a_clear_error(tmp_path):
    wav = tmp_path / "a.wav"
    write_tone_wav(wav, 0.1)
    result = CliRunner().invoke(cli, ["simulate", str(wav), "--url", "http://127.0.0.1:9"])
    assert result.exit_code == 1 and "cannot reach the server" in result.output


@pytest.fixture
def signed_server(tmp_path):
    """A server with fake providers, checking webhook signatures with token "s3cret", run on
    its own event loop in a thread (the CLI runs its own loop); yields its base URL."""
    import asyncio
    import threading

    from aiohttp import web

    from voicehost.conversation import ResponderCallHandler
    from voicehost.records import CallStore
    from voicehost.responders.scripted import ScriptedResponderProvider
    from voicehost.server import Binding, ServerSettings, build_app

    fakes = FakeProvidersPlugin()
    ready = threading.Event()
    state: dict = {}

    async def serve() -> None:
        scripted = ScriptedResponderProvider()
        handler = ResponderCallHandler(
            scripted.create(scripted.default_config), CallStore(tmp_path / "calls.db")
        )
        stt_config = {"final_after_frames": 40, "final_text": "who are you"}
        settings = ServerSettings(auth_token="s3cret", public_url="https://voice.example.com")
        app = build_app(
            settings,
            stt=Binding(fakes.stt, stt_config),
            tts=Binding(fakes.tts, {**fakes.tts.default_config, "ms_per_char": 5}),
            handler=handler,
        )
        handler.attach(app)
        runner = web.AppRunner(app)
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
