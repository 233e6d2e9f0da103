"""``serve`` loads the chosen providers' models before it listens."""

from __future__ import annotations

import pytest

from voicehost import ProviderError
from voicehost.app.assembly import preload_providers
from voicehost.config import ProviderChoice, RuntimeConfig, Settings


class Loader:
    def __init__(self, fail: bool = False) -> None:
        self.loaded: list[dict] = []
        self.fail = fail

    def preload(self, config):
        if self.fail:
            raise ProviderError("whisper", "model file is corrupt")
        self.loaded.append(dict(config))


def runtime(stt: Loader, tts: Loader) -> RuntimeConfig:
    return RuntimeConfig(
        Settings(),
        ProviderChoice("stt", "s", stt, "p", {"model": "tiny.en"}),
        ProviderChoice("tts", "t", tts, "p", {"voice": "joe"}),
        None,
    )


def test_preload_loads_both_providers_with_their_config():
    stt, tts = Loader(), Loader()
    preload_providers(runtime(stt, tts))
    assert stt.loaded == [{"model": "tiny.en"}]
    assert tts.loaded == [{"voice": "joe"}]


def test_preload_failure_stops_start_up():
    with pytest.raises(ProviderError, match="model file is corrupt"):
        preload_providers(runtime(Loader(fail=True), Loader()))
