"""Everything a plugin author needs is importable from ``voicehost`` itself, and the built-in
plugins (and the example plugin) import nothing else of the core."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import voicehost

ROOT = Path(__file__).resolve().parents[2]
PLUGIN_SOURCES = sorted(
    [*ROOT.glob("plugins/*/voicehost_*/**/*.py"), *ROOT.glob("examples/voicehost-*/**/*.py")]
)


def _core_imports(path: Path) -> list[str]:
    """Every ``voicehost.<something>`` module ``path`` imports (the root package is fine)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        found += [n for n in names if n.startswith("voicehost.")]
    return found


def test_there_are_plugin_sources_to_check():
    assert len(PLUGIN_SOURCES) >= 20


@pytest.mark.parametrize("path", PLUGIN_SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_plugins_import_only_from_the_voicehost_package(path):
    assert _core_imports(path) == []


def test_the_plugin_api_is_complete():
    """Contracts, formats, hookimpl, errors, the config base, ResponderProvider, the
    cloud-STT streaming base, and the μ-law and resampling helpers."""
    needed = {
        "AudioFormat",
        "MULAW_8K",
        "PCM16_16K",
        "PCM16_24K",
        "TranscriptionProvider",
        "TranscriptionSession",
        "TranscriptionRequest",
        "SpeechProvider",
        "ResponderProvider",
        "Responder",
        "HangUp",
        "hookimpl",
        "ConfigError",
        "ProviderError",
        "ProviderAuthError",
        "ProviderConnectionError",
        "ProviderConfig",
        "Field",
        "env_field",
        "StreamingConfig",
        "StreamingTranscriptionProvider",
        "StreamingTranscriptionSession",
        "ulaw_encode",
        "ulaw_decode",
        "AudioConverter",
        "StreamResampler",
    }
    assert needed <= set(voicehost.__all__)
    for name in voicehost.__all__:
        assert getattr(voicehost, name) is not None, name
