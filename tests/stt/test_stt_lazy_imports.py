"""The cloud STT plugins import their vendor SDK only when a client is first needed: importing
the plugin, registering its provider and parsing its config leave ``openai`` / ``deepgram``
out of ``sys.modules`` (``voicehost list-plugins`` and ``config check`` stay fast)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

PLUGINS = [
    ("voicehost_openai_stt", "openai", "OpenAISTTConfig"),
    ("voicehost_deepgram_stt", "deepgram", "DeepgramSTTConfig"),
]

SCRIPT = """
import json, sys
import {plugin} as plugin

seen = {{}}
providers = []
plugin.register_transcription_providers(providers.append)
(provider,) = providers
config = plugin.{config_class}(api_key="k-123")
provider.is_configured(config)
seen["registered"] = {sdk!r} in sys.modules
provider.preload(config)  # builds the shared client: now the SDK is needed
seen["preloaded"] = {sdk!r} in sys.modules
print(json.dumps(seen))
"""


@pytest.mark.parametrize(("plugin", "sdk", "config_class"), PLUGINS)
def test_the_sdk_is_imported_only_when_a_client_is_built(plugin, sdk, config_class):
    script = SCRIPT.format(plugin=plugin, sdk=sdk, config_class=config_class)
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen == {"registered": False, "preloaded": True}
