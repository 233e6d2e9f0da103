"""The cloud TTS plugins import their vendor SDKs lazily: importing a plugin package,
registering its provider, parsing a config and asking ``is_configured`` / ``output_format``
load no SDK (the CLI lists plugins without paying for them). Each check runs in a fresh
interpreter, so nothing another test imported can hide an eager import."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

PROBE = textwrap.dedent(
    """
    import json, sys
    import {package} as plugin

    providers = []
    plugin.register_speech_providers(providers.append)
    [provider] = providers
    config = provider.config_class.model_validate({config})
    assert provider.is_configured(config)
    provider.output_format(config)
    heavy = {heavy}
    print(json.dumps(sorted(
        name for name in sys.modules if name.split(".")[0] in heavy
    )))
    """
)


@pytest.mark.parametrize(
    ("package", "config", "heavy"),
    [
        ("voicehost_openai_tts", {"api_key": "sk"}, ["openai", "httpx2", "httpx"]),
        (
            "voicehost_elevenlabs_tts",
            {"api_key": "xi", "voice_id": "v", "mode": "websocket"},
            ["elevenlabs", "httpx", "websockets"],
        ),
    ],
)
def test_importing_and_registering_the_plugin_loads_no_sdk(package, config, heavy):
    code = PROBE.format(package=package, config=repr(config), heavy=repr(set(heavy)))
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []


@pytest.mark.parametrize(
    ("package", "config", "loaded"),
    [
        ("voicehost_openai_tts", {"api_key": "sk"}, "openai"),
        ("voicehost_elevenlabs_tts", {"api_key": "xi", "voice_id": "v"}, "httpx"),
        (
            "voicehost_elevenlabs_tts",
            {"api_key": "xi", "voice_id": "v", "mode": "websocket"},
            "websockets",
        ),
    ],
)
def test_preload_imports_the_sdk_before_the_first_call(package, config, loaded):
    # serve preloads at start-up, off the event loop: the first reply then finds the SDK
    # imported instead of blocking every call's event loop on the import.
    code = PRELOAD_PROBE.format(package=package, config=repr(config), loaded=repr(loaded))
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "True"]


PRELOAD_PROBE = textwrap.dedent(
    """
    import sys
    import {package} as plugin

    providers = []
    plugin.register_speech_providers(providers.append)
    [provider] = providers
    config = provider.config_class.model_validate({config})
    print({loaded} in sys.modules)
    provider.preload(config)
    print({loaded} in sys.modules)
    """
)
