"""The example third-party plugin (examples/voicehost-example-tts): its beeps, its typed
``[tts.beep]`` table as the host parses it, and that it stays cheap to import."""

from __future__ import annotations

import ast
import asyncio
import subprocess
import sys
import textwrap
from pathlib import Path
from types import ModuleType

import pytest

from voicehost import ConfigError
from voicehost.config import Settings, choose_provider
from voicehost.plugins import PluginHost

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "voicehost-example-tts"


@pytest.fixture(scope="module")
def example() -> ModuleType:
    sys.path.insert(0, str(EXAMPLE))
    try:
        import voicehost_example_tts
    finally:
        sys.path.remove(str(EXAMPLE))
    return voicehost_example_tts


@pytest.fixture
def host(example: ModuleType) -> PluginHost:
    host = PluginHost()
    record = host.register(example, name="voicehost-example-tts")
    assert record.status != "failed", record.error
    return host


def choose(host: PluginHost, table: dict) -> object:
    settings = Settings.from_dict({"tts": {"provider": "beep", "beep": table}}, environ={})
    return choose_provider(settings, host, "tts")


def test_example_plugin_speaks_a_beep_per_word(example: ModuleType) -> None:
    async def collect() -> list[bytes]:
        provider = example.BeepSpeechProvider()
        return [c async for c in provider.synthesize("one two three", example.BeepConfig())]

    chunks = asyncio.run(collect())
    assert len(chunks) == 3
    assert all(len(c) == 8000 * (120 + 80) // 1000 for c in chunks)
    beep_bytes = 8000 * 120 // 1000
    assert chunks[0][beep_bytes:] == b"\xff" * (8000 * 80 // 1000)  # the gap is μ-law silence
    assert len(set(chunks[0][:beep_bytes])) > 10  # the beep is a tone, not silence


def test_the_table_is_parsed_into_beep_config(example: ModuleType, host: PluginHost) -> None:
    choice = choose(host, {"tone_hz": 440, "gap_ms": 0})
    assert choice.config == example.BeepConfig(tone_hz=440, beep_ms=120, gap_ms=0)

    async def collect() -> list[bytes]:
        return [c async for c in choice.provider.synthesize("hi there", choice.config)]

    assert [len(c) for c in asyncio.run(collect())] == [960, 960]


def test_a_misspelt_key_is_refused_with_did_you_mean(host: PluginHost) -> None:
    with pytest.raises(ConfigError) as info:
        choose(host, {"tone_hx": 1})
    assert info.value.problems == [
        "plugins.toml: [tts.beep] tone_hx: unknown key (did you mean 'tone_hz'?)"
    ]


def test_a_string_tone_is_a_config_error_not_a_type_error(host: PluginHost) -> None:
    with pytest.raises(ConfigError) as info:
        choose(host, {"tone_hz": "500"})
    assert info.value.problems == [
        "plugins.toml: [tts.beep] tone_hz: must be a valid integer, not '500'"
    ]


@pytest.mark.parametrize(
    ("table", "problem"),
    [
        ({"tone_hz": 5000}, "[tts.beep] tone_hz: must be less than or equal to 3400, not 5000"),
        ({"tone_hz": 99}, "[tts.beep] tone_hz: must be greater than or equal to 100, not 99"),
        ({"beep_ms": 0}, "[tts.beep] beep_ms: must be greater than or equal to 10, not 0"),
        ({"gap_ms": -1}, "[tts.beep] gap_ms: must be greater than or equal to 0, not -1"),
        ({"gap_ms": 1.5}, "[tts.beep] gap_ms: must be a valid integer, not 1.5"),
    ],
)
def test_out_of_range_values_name_table_key_and_value(
    host: PluginHost, table: dict, problem: str
) -> None:
    with pytest.raises(ConfigError) as info:
        choose(host, table)
    assert info.value.problems == [f"plugins.toml: {problem}"]


def test_it_imports_only_from_the_voicehost_root() -> None:
    tree = ast.parse((EXAMPLE / "voicehost_example_tts" / "__init__.py").read_text())
    modules = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    modules |= {
        a.name for node in ast.walk(tree) if isinstance(node, ast.Import) for a in node.names
    }
    assert {m for m in modules if m and m.startswith("voicehost")} == {"voicehost"}


def test_importing_and_registering_loads_no_numpy() -> None:
    """Listing plugins imports each plugin and calls its hooks: the example's μ-law encoder
    (numpy) must wait for the first synthesis."""
    code = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(EXAMPLE)!r})
        import voicehost_example_tts as plugin
        plugin.register_speech_providers([].append)
        print(sorted(m for m in ("numpy", "soxr") if m in sys.modules))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
