"""Where the Smart Turn v3.2 weights are: the file in the ``pipecat-ai`` wheel, or a path.

The bundled file ships in the ``pipecat-ai`` wheel (1.14.0) at
``pipecat/audio/turn/smart_turn/data/smart-turn-v3.2-cpu.onnx`` (8 679 182 bytes). It is
found through the distribution's installed files (:func:`importlib.metadata.distribution` →
``locate_file``), so the ``pipecat`` package is never imported: its ``__init__`` imports
loguru and more, which this workspace does not install, and
``importlib.util.find_spec("pipecat.audio.turn.smart_turn.data")`` would run it (finding a
submodule imports its parents). Nothing is downloaded. This module imports only the standard
library.
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path
from typing import Final

__all__ = ["BUNDLED_DISTRIBUTION", "BUNDLED_FILE", "bundled_model_path", "resolve_model_path"]

#: The registry package whose wheel carries the weights.
BUNDLED_DISTRIBUTION: Final = "pipecat-ai"
#: The weights' path inside that distribution.
BUNDLED_FILE: Final = "pipecat/audio/turn/smart_turn/data/smart-turn-v3.2-cpu.onnx"


def bundled_model_path() -> Path:
    """The Smart Turn v3.2 ONNX file installed with ``pipecat-ai``.

    Raises:
        ValueError: ``pipecat-ai`` is not installed, or its install lacks the file.
    """
    try:
        dist = importlib.metadata.distribution(BUNDLED_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        raise ValueError(
            f"the bundled Smart Turn model needs the {BUNDLED_DISTRIBUTION!r} distribution, "
            "which is not installed (pip install voicehost-smart-turn pulls it)"
        ) from None
    path = Path(str(dist.locate_file(BUNDLED_FILE)))
    if not path.is_file():
        raise ValueError(
            f"{BUNDLED_DISTRIBUTION} {dist.version} has no {BUNDLED_FILE} (expected at {path})"
        )
    return path


def resolve_model_path(model_path: str) -> Path:
    """``""`` → the bundled file; anything else → that path, which must be a ``.onnx`` file.

    Raises:
        ValueError: the file is missing or not ``.onnx`` (the message names the value).
    """
    if not model_path:
        return bundled_model_path()
    path = Path(model_path).expanduser()
    if path.suffix != ".onnx":
        raise ValueError(f"must be a path to a Smart Turn .onnx file, not {model_path!r}")
    if not path.is_file():
        raise ValueError(f"model {str(path)!r} does not exist")
    return path
