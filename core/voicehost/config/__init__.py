"""``plugins.toml``: reading it (:mod:`.document`), parsing a table into its typed class
(:mod:`.tables`), choosing providers (:mod:`.providers`), and the one whole-file validation
(:mod:`.check`).

Layout::

    [plugins]                 # optional: enabled = [...] or disabled = [...]
    [stt]
    provider = "deepgram"
    [stt.deepgram]            # parsed into the provider's config class, handed to every session
    model = "nova-3"
    [tts]
    provider = "piper"
    [responder]
    provider = "scripted"
    [server] / [twilio] / [records]

Every table is typed (:mod:`voicehost.config_model`): unknown keys and tables are refused with
a "did you mean", and every message names the file, the table, the key and the bad value.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from voicehost.config.check import CheckedConfig, check_config
    from voicehost.config.document import (
        CONFIG_ENV,
        Settings,
        config_path,
        load_settings,
        mask_secrets,
        resolve_env,
    )
    from voicehost.config.providers import (
        DEFAULT_PROVIDERS,
        KIND_NAMES,
        ProviderChoice,
        RuntimeConfig,
        choose_provider,
        resolve_providers,
    )
    from voicehost.config.tables import parse_settings_table

#: Public name → defining module, loaded on first use (PEP 562): reading the file
#: (``voicehost calls list``) needs neither the plugin host nor pydantic.
_EXPORTS: dict[str, str] = {
    **dict.fromkeys(["CheckedConfig", "check_config"], "voicehost.config.check"),
    **dict.fromkeys(
        ["CONFIG_ENV", "Settings", "config_path", "load_settings", "mask_secrets", "resolve_env"],
        "voicehost.config.document",
    ),
    **dict.fromkeys(
        [
            "DEFAULT_PROVIDERS",
            "KIND_NAMES",
            "ProviderChoice",
            "RuntimeConfig",
            "choose_provider",
            "resolve_providers",
        ],
        "voicehost.config.providers",
    ),
    "parse_settings_table": "voicehost.config.tables",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'voicehost.config' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "CONFIG_ENV",
    "DEFAULT_PROVIDERS",
    "KIND_NAMES",
    "CheckedConfig",
    "ProviderChoice",
    "RuntimeConfig",
    "Settings",
    "check_config",
    "choose_provider",
    "config_path",
    "load_settings",
    "mask_secrets",
    "parse_settings_table",
    "resolve_env",
    "resolve_providers",
]
