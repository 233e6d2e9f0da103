"""The ``[tts.openai]`` config blob: defaults, parsing and start-up validation.

Keys (all optional in ``plugins.toml``; the defaults below fill the rest):

=================  ==========================  ==============================================
key                default                     meaning
=================  ==========================  ==============================================
``api_key``        ``"${OPENAI_API_KEY}"``     Bearer key; the host resolves the variable at
                                               start-up (unset → ``ConfigError`` naming it).
``model``          ``"gpt-4o-mini-tts"``       ``tts-1``, ``tts-1-hd``, ``gpt-4o-mini-tts`` …
``voice``          ``"coral"``                 a built-in voice name, or a custom voice id
                                               (``"voice_…"``, sent as ``{"id": …}``).
``instructions``   ``""``                      tone/style prompt; not for ``tts-1*`` models.
``speed``          ``1.0``                     0.25 – 4.0.
``base_url``       ``"https://api.openai.com/v1"``  the API origin as the ``openai`` SDK takes
                                               it (tests and proxies set only this).
``timeout``        ``30.0``                    seconds for connect and for each read.
``max_retries``    ``0``                       SDK retries of 408/409/429/5xx before any audio;
                                               0 because a caller waiting through back-off is
                                               worse than the host skipping the reply.
=================  ==========================  ==============================================

Protocol: ``POST /v1/audio/speech`` (wire-protocols.md §3.1).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from voicehost.errors import ConfigError
from voicehost.provider_config import ConfigBlob

#: ``input`` is limited to 4096 characters a request by the vendor.
MAX_INPUT_CHARS = 4096
SPEED_RANGE = (0.25, 4.0)
#: Models that reject ``instructions``.
MODELS_WITHOUT_INSTRUCTIONS = frozenset({"tts-1", "tts-1-hd"})

DEFAULT_CONFIG: Mapping[str, Any] = {
    "api_key": "${OPENAI_API_KEY}",
    "model": "gpt-4o-mini-tts",
    "voice": "coral",
    "instructions": "",
    "speed": 1.0,
    "base_url": "https://api.openai.com/v1",
    "timeout": 30.0,
    "max_retries": 0,
}

_WHERE = "[tts.openai]"


@attrs.frozen
class OpenAITTSSettings:
    """The validated config blob.

    Attributes:
        api_key: the Bearer key.
        model: TTS model id.
        voice: voice name or custom voice id.
        instructions: style prompt, ``""`` for none (then not sent).
        speed: playback speed factor, 0.25 – 4.0.
        base_url: API origin including ``/v1``.
        timeout: seconds, > 0.
        max_retries: SDK retries, ≥ 0.
    """

    api_key: str
    model: str
    voice: str
    instructions: str
    speed: float
    base_url: str
    timeout: float
    max_retries: int

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> OpenAITTSSettings:
        """Parse ``config`` (missing keys take :data:`DEFAULT_CONFIG`'s values).

        Raises:
            ConfigError: naming the key at fault and what it should be.
        """
        blob = ConfigBlob(config, DEFAULT_CONFIG, _WHERE)
        blob.check_known()
        settings = cls(
            api_key=blob.string("api_key", required=True, strip=False),
            model=blob.string("model", required=True, strip=False),
            voice=blob.string("voice", required=True, strip=False),
            instructions=blob.string("instructions", strip=False),
            speed=blob.number("speed", minimum=SPEED_RANGE[0], maximum=SPEED_RANGE[1]),
            base_url=blob.http_url("base_url"),
            timeout=blob.number("timeout", minimum=0.001, maximum=3600.0),
            max_retries=blob.integer("max_retries", minimum=0),
        )
        if settings.instructions and settings.model in MODELS_WITHOUT_INSTRUCTIONS:
            raise ConfigError(
                f"{_WHERE} instructions are not supported by model {settings.model!r}; "
                "use gpt-4o-mini-tts or leave instructions empty"
            )
        return settings
