"""The ``turn`` provider kind: registered through ``register_turn_detectors``, chosen only
with ``[turn] provider``, its table parsed into a :class:`voicehost.TurnConfig` subclass,
shown by ``list-plugins`` and checked by ``config check``."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from typing import ClassVar

import pytest
from click.testing import CliRunner

import voicehost
from voicehost import ProviderConfig, TurnConfig, TurnDecision, TurnDetector, hookimpl
from voicehost.config import Settings
from voicehost.config.providers import resolve_providers
from voicehost.errors import ConfigError
from voicehost.plugins import PluginHost
from voicehost_smart_turn import SmartTurnConfig, SmartTurnProvider


class _Detector(TurnDetector):
    async def decide(self, audio: bytes) -> TurnDecision:
        return TurnDecision(True, 1.0)


class _BadConfigProvider(voicehost.TurnDetectorProvider):
    id: ClassVar[str] = "bad"
    config_class: ClassVar[type[ProviderConfig]] = ProviderConfig

    def create_detector(self, config):
        return _Detector()


class _Plugin:
    @hookimpl
    def register_turn_detectors(self, register):
        register(_BadConfigProvider())


def _settings(text: str) -> Settings:
    return Settings.from_dict(tomllib.loads(text), environ={})


def _host() -> PluginHost:
    host = PluginHost()
    host.load_builtins()
    host.load_entry_points()
    return host


def test_the_contract_is_exported_from_voicehost():
    from voicehost import contracts

    for name in ("TurnConfig", "TurnDecision", "TurnDetector", "TurnDetectorProvider"):
        assert getattr(voicehost, name) is getattr(contracts, name)
        assert name in voicehost.__all__ and name in contracts.__all__


def test_smart_turn_registers_and_is_chosen_only_when_asked():
    host = _host()
    assert isinstance(host.turn_detectors["smart-turn"], SmartTurnProvider)
    assert host.records["voicehost-smart-turn"].providers["turn"] == ["smart-turn"]
    assert host.records["voicehost-smart-turn"].hooks == ["register_turn_detectors"]

    runtime = resolve_providers(_settings(""), host)
    assert runtime.turn is None
    assert runtime.stt is not None and runtime.stt.id == "whisper"

    settings = _settings('[turn]\nprovider = "smart-turn"\n[turn.smart-turn]\nthreshold = 0.7\n')
    runtime = resolve_providers(settings, host)
    assert runtime.turn is not None and runtime.turn.id == "smart-turn"
    assert runtime.turn.plugin == "voicehost-smart-turn"
    assert isinstance(runtime.turn.config, SmartTurnConfig)
    assert runtime.turn.config.threshold == 0.7
    assert runtime.turn.config.incomplete_timeout_ms == TurnConfig().incomplete_timeout_ms
    assert runtime.turn in runtime.chosen


def test_turn_is_chosen_beside_a_conversation_provider():
    host = _host()
    settings = _settings(
        '[conversation]\nprovider = "openai-realtime"\n'
        '[conversation.openai-realtime]\napi_key = "k"\n[turn]\nprovider = "smart-turn"\n'
    )
    runtime = resolve_providers(settings, host)
    assert runtime.conversation is not None and runtime.turn is not None
    assert runtime.stt is None


def test_turn_config_problems_are_reported():
    host = _host()
    with pytest.raises(ConfigError) as caught:
        resolve_providers(
            _settings('[turn]\nprovider = "smart-turn"\n[turn.smart-turn]\nthreshold = 2\n'),
            host,
        )
    assert "[turn.smart-turn] threshold" in str(caught.value)
    with pytest.raises(ConfigError) as caught:
        resolve_providers(_settings('[turn]\nprovider = "smart-tern"\n'), host)
    assert "not a loaded end-of-turn detector provider" in str(caught.value)
    assert "smart-turn" in str(caught.value)
    with pytest.raises(ConfigError) as caught:
        resolve_providers(
            _settings(
                '[turn]\nprovider = "smart-turn"\n[turn.smart-turn]\nmodel_path = "/no/such.onnx"\n'
            ),
            host,
        )
    assert "[turn.smart-turn] model_path" in str(caught.value)
    assert "/no/such.onnx" in str(caught.value)


def test_a_turn_provider_must_use_a_turn_config():
    host = PluginHost()
    host.register(_Plugin(), "vh-bad-turn")
    with pytest.raises(ConfigError) as caught:
        resolve_providers(_settings('[turn]\nprovider = "bad"\n'), host, ("turn",))
    assert "must subclass voicehost.TurnConfig" in str(caught.value)


@pytest.fixture
def runner(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    for var in ("VOICEHOST_CONFIG", "VOICEHOST_LOAD_PLUGINS", "VOICEHOST_STRICT_PLUGINS"):
        monkeypatch.delenv(var, raising=False)
    return CliRunner()


def test_list_plugins_and_config_check(runner, tmp_path):
    from voicehost.cli import cli

    result = runner.invoke(cli, ["list-plugins", "--json"])
    assert result.exit_code == 0, result.output
    [entry] = [e for e in json.loads(result.stdout) if e["name"] == "voicehost-smart-turn"]
    assert entry["providers"]["turn"] == ["smart-turn"]
    table = runner.invoke(cli, ["list-plugins"]).stdout.splitlines()
    header = table[0].split()
    [row] = [line.split() for line in table if line.startswith("voicehost-smart-turn ")]
    assert row[header.index("TURN")] == "smart-turn"

    (tmp_path / "plugins.toml").write_text('[turn]\nprovider = "smart-turn"\n')
    result = runner.invoke(cli, ["config", "check"])
    assert result.exit_code == 0, result.output
    assert "[turn] end-of-turn detector: smart-turn (from voicehost-smart-turn)" in result.stdout
    (tmp_path / "plugins.toml").write_text(
        '[turn]\nprovider = "smart-turn"\n[turn.smart-turn]\nthresold = 0.6\n'
    )
    result = runner.invoke(cli, ["config", "check"])
    assert result.exit_code == 1
    assert "thresold" in result.stderr


def test_registering_imports_neither_numpy_nor_onnxruntime():
    """``list-plugins`` and ``config check`` stay light: the plugin's import, registration and
    config parsing (which locates the weights) import no numpy, ONNX Runtime or Pipecat."""
    script = (
        "import json, sys\n"
        "import voicehost_smart_turn as plugin\n"
        "providers = []\n"
        "plugin.register_turn_detectors(providers.append)\n"
        "config = plugin.SmartTurnConfig()\n"
        "heavy = ('numpy', 'onnxruntime', 'pipecat')\n"
        "seen = {'parsed': [m for m in heavy if m in sys.modules]}\n"
        "providers[0].preload(config)\n"
        "seen['preloaded'] = [m for m in heavy if m in sys.modules]\n"
        "print(json.dumps(seen))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen == {"parsed": [], "preloaded": ["numpy", "onnxruntime"]}


def test_config_check_finds_missing_bundled_weights(monkeypatch):
    """The default ``model_path = ""`` is checked too: a ``pipecat-ai`` without the file is
    a config error at start-up, not at the first call."""
    from voicehost_smart_turn import weights

    monkeypatch.setattr(weights, "BUNDLED_FILE", "pipecat/no/such-model.onnx")
    with pytest.raises(ValueError, match=r"pipecat-ai .* has no pipecat/no/such-model\.onnx"):
        SmartTurnConfig()
