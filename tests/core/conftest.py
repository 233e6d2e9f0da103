"""Fixtures for plugin-host tests: real distributions written to a temporary directory.

Each fake plugin is a ``<name>-<version>.dist-info`` with METADATA and ``entry_points.txt``
declaring a ``voicehost`` entry point, plus the module it names, on ``sys.path``; so
``importlib.metadata`` discovers it exactly as an installed wheel.
"""

from __future__ import annotations

import itertools
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

_counter = itertools.count()

GOOD_PLUGIN = """
from voicehost import hookimpl, SpeechProvider, TranscriptionProvider

class Tts(SpeechProvider):
    id = "{tts_id}"
    async def synthesize(self, text, config):
        yield b"\\xff" * 160

class Stt(TranscriptionProvider):
    id = "{stt_id}"
    def create_session(self, request):
        raise NotImplementedError

@hookimpl
def register_speech_providers(register):
    register(Tts())

@hookimpl
def register_transcription_providers(register):
    register(Stt())
"""


class DistFactory:
    """Writes fake installed distributions under one directory on ``sys.path``."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def __call__(self, dist: str, source: str, *, version: str = "1.0", **fmt: str) -> str:
        """Install ``dist`` whose entry point loads a new module with ``source``.

        Returns the module name.
        """
        module = f"vh_fake_{dist.replace('-', '_')}_{next(_counter)}"
        (self.root / f"{module}.py").write_text(textwrap.dedent(source).format(**fmt))
        info = self.root / f"{dist.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
        (info / "entry_points.txt").write_text(f"[voicehost]\n{dist} = {module}\n")
        return module


@pytest.fixture
def make_dist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., str]:
    """Factory for fake installed plugins, visible to ``importlib.metadata.entry_points()``."""
    root = tmp_path / "site"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.delenv("VOICEHOST_LOAD_PLUGINS", raising=False)
    monkeypatch.delenv("VOICEHOST_STRICT_PLUGINS", raising=False)
    monkeypatch.delenv("VOICEHOST_CONFIG", raising=False)
    before = set(sys.modules)
    yield DistFactory(root)
    for name in set(sys.modules) - before:
        if name.startswith("vh_fake_"):
            del sys.modules[name]


@pytest.fixture
def fake_eps(tmp_path: Path):
    """Entry points of only the fake distributions (not the installed first-party ones)."""
    from importlib.metadata import distributions

    def eps():
        found = []
        for dist in distributions(path=[str(tmp_path / "site")]):
            found.extend(ep for ep in dist.entry_points if ep.group == "voicehost")
        return found

    return eps
