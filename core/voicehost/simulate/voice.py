"""The caller's voice for ``simulate --say TEXT``: the offline TTS provider ``piper``.

The provider comes from the plugin host like any other (every installed plugin, subject to
``VOICEHOST_LOAD_PLUGINS``; the caller's voice does not depend on which TTS the server under
test uses), with the ``[tts.piper]`` defaults: the bundled ``en_US-joe-medium`` voice. Its
speech (PCM16 at the voice's rate, ``provider.output_format``) is converted to μ-law 8 kHz with
:class:`voicehost.audio.AudioConverter` (soxr ``HQ``), as a phone line carries it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from voicehost import plugins as plugin_loading
from voicehost.audio import AudioConverter
from voicehost.config_model import parse_table
from voicehost.contracts import MULAW_8K
from voicehost.errors import ConfigError, ProviderError

__all__ = ["CALLER_TTS", "speak"]

#: The TTS provider that voices ``--say``.
CALLER_TTS = "piper"


async def speak(texts: Sequence[str]) -> list[bytes]:
    """Each of ``texts`` spoken by the ``piper`` provider, as μ-law 8 kHz bytes.

    Raises:
        ConfigError: no ``piper`` provider is installed (or it failed to load), or its voice
            files are missing.
        ProviderError: synthesis failed, or produced no audio for a text.
    """
    if not texts:
        return []
    host = plugin_loading.load_plugin_host()
    provider = host.registry("tts").get(CALLER_TTS)
    if provider is None:
        raise ConfigError(
            f"--say needs the offline TTS provider {CALLER_TTS!r} (the voicehost-piper-tts "
            "plugin), which is not installed or failed to load; `voicehost list-plugins` says"
        )
    config = parse_table(provider.config_class, {}, table=f"tts.{CALLER_TTS}")
    fmt = provider.output_format(config)
    await asyncio.to_thread(provider.preload, config)
    spoken = []
    for text in texts:
        converter = AudioConverter(fmt, MULAW_8K, quality="HQ")
        chunks = [converter.convert(chunk) async for chunk in provider.synthesize(text, config)]
        ulaw = b"".join(chunks) + converter.flush(discard_partial=True)
        if not ulaw:
            raise ProviderError(CALLER_TTS, f"no audio for --say {text!r}")
        spoken.append(ulaw)
    return spoken
