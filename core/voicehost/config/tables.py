"""Parsing one ``plugins.toml`` table into its typed class (:mod:`voicehost.config_model`)."""

from __future__ import annotations

from voicehost.config.document import Settings, resolve_env
from voicehost.config_model import ModelT, env_reference, parse_table

__all__ = ["parse_settings_table"]


def parse_settings_table(settings: Settings, model: type[ModelT], *keys: str) -> ModelT:
    """Parse the table at ``keys`` of ``settings`` into ``model``: ``${VAR}`` resolved in the
    table, and the environment variable of each :func:`~voicehost.config_model.env_field` key
    the table leaves out, then :func:`voicehost.config_model.parse_table`.

    Raises:
        ConfigError: not a table, an unset variable a resolved value needs, or every
            problem the model finds (``problems`` holds one line each).
    """
    table = ".".join(keys)
    data = settings.raw_table(*keys)
    for name in model.model_fields:
        reference = env_reference(model, name)
        if name not in data and reference is not None:
            data[name] = reference
    resolved = resolve_env(data, where=f"[{table}]", environ=settings.environ, file=settings.where)
    return parse_table(model, resolved, table=table, file=settings.where)
