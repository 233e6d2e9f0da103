"""The caller WAVs shipped in ``examples/calls/``: short, valid phone audio, each meant for a
rule of the scripted responder in the shipped ``plugins.toml``, used by the README; and (slow)
played through the real offline models, each hits its rule."""

from __future__ import annotations

import importlib.util
import json
import re
import tomllib
from pathlib import Path

import numpy as np
import pytest
import soundfile
from click.testing import CliRunner

from voicehost.audio import ulaw_to_pcm16_array
from voicehost.cli import cli
from voicehost.wavfile import read_audio_ulaw

REPO = Path(__file__).resolve().parents[2]
CALLS = REPO / "examples" / "calls"
#: file → (a words of the reply its rule gives, whether the bot hangs up after it)
EXPECTED = {
    "hours.wav": ("Monday to Friday", False),
    "who.wav": ("demo assistant", False),
    "goodbye.wav": ("Thanks for calling", True),
}


def make_calls_module():
    spec = importlib.util.spec_from_file_location("make_calls", CALLS / "make_calls.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_shipped_call_is_short_valid_phone_audio(name):
    path = CALLS / name
    assert path.stat().st_size < 100_000
    info = soundfile.info(str(path))
    assert (info.format, info.subtype, info.channels) == ("WAV", "PCM_16", 1)
    assert info.samplerate in (8000, 16000)
    assert 0.5 < info.duration < 5
    pcm = ulaw_to_pcm16_array(read_audio_ulaw(path)).astype(np.float32) / 32768  # as played
    assert abs(len(pcm) - info.duration * 8000) <= 2
    assert np.sqrt(np.mean(pcm**2)) > 0.02  # speech, not silence


def test_the_script_that_makes_them_says_what_hits_each_rule():
    """What each file says hits the rule meant for it, first, in the shipped script."""
    texts = make_calls_module().CALLS
    assert set(texts) == set(EXPECTED) == {p.name for p in CALLS.glob("*.wav")}
    scripted = tomllib.loads((REPO / "plugins.toml").read_text())["responder"]["scripted"]
    for name, text in texts.items():
        rule = next(r for r in scripted["rules"] if re.search(r["match"], text, re.IGNORECASE))
        words, hangs_up = EXPECTED[name]
        assert words in rule["reply"] and rule.get("hangup", False) is hangs_up, name


def test_the_readme_plays_them():
    readme = (REPO / "README.md").read_text()
    for name in EXPECTED:
        assert f"examples/calls/{name}" in readme
    assert "examples/calls/make_calls.py" in readme


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_the_shipped_calls_hit_their_rules_through_the_offline_models(tmp_path, monkeypatch):
    """``simulate --local`` with the shipped plugins.toml (Whisper, Piper, scripted)."""
    monkeypatch.chdir(tmp_path)  # [records] path = "voicehost.db", relative
    monkeypatch.delenv("VOICEHOST_LOAD_PLUGINS", raising=False)
    monkeypatch.delenv("TWILIO_AUTH_TOKEN", raising=False)
    files = [str(CALLS / name) for name in EXPECTED]
    args = ["simulate", "--local", "--fast", "--pause-ms", "300", "--json", "--no-progress"]
    result = CliRunner().invoke(cli, [*args, "--config", str(REPO / "plugins.toml"), *files])
    assert result.exit_code == 0, result.output + repr(result.exception)
    report = json.loads(result.stdout)
    assert report["hung_up_by_bot"] is True
    greeting, *turns = report["turns"]
    assert greeting["input"] is None and greeting["first_audio_ms"] is not None
    assert [turn["input"] for turn in turns] == list(EXPECTED)
    for turn, (words, _) in zip(turns, EXPECTED.values(), strict=True):
        replies = [r["text"] for r in turn["records"] if r["role"] == "bot"]
        assert any(words in reply for reply in replies), (turn["input"], turn["records"])
        assert turn["first_audio_ms"] is not None
