"""voicehost: a plugin host for phone-call voice bots.

Twilio streams a call's audio (G.711 μ-law, 8 kHz, 20 ms frames) over a WebSocket; voicehost
feeds it to a speech-to-text provider, turns final transcripts into replies, speaks them
through a text-to-speech provider and streams the audio back, with barge-in. Providers are
plugins discovered through the ``voicehost`` entry-point group.
"""

from importlib.metadata import PackageNotFoundError, version

from voicehost.contracts import (
    MULAW_8K,
    PCM16_8K,
    PCM16_16K,
    PCM16_22K,
    PCM16_24K,
    AudioFormat,
    SpeechProvider,
    TranscriptionCallbacks,
    TranscriptionCapabilities,
    TranscriptionProvider,
    TranscriptionRequest,
    TranscriptionSession,
)
from voicehost.errors import (
    ConfigError,
    PluginError,
    ProviderAuthError,
    ProviderConnectionError,
    ProviderError,
    VoicehostError,
)
from voicehost.hookspecs import hookimpl

try:
    __version__ = version("voicehost")
except PackageNotFoundError:  # pragma: no cover - running from a bare source tree
    __version__ = "0.0.0"

__all__ = [
    "MULAW_8K",
    "PCM16_8K",
    "PCM16_16K",
    "PCM16_22K",
    "PCM16_24K",
    "AudioFormat",
    "ConfigError",
    "PluginError",
    "ProviderAuthError",
    "ProviderConnectionError",
    "ProviderError",
    "SpeechProvider",
    "TranscriptionCallbacks",
    "TranscriptionCapabilities",
    "TranscriptionProvider",
    "TranscriptionRequest",
    "TranscriptionSession",
    "VoicehostError",
    "__version__",
    "hookimpl",
]
