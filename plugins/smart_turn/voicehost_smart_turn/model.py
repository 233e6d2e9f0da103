"""The Smart Turn v3.2 model: one loaded copy per process, and one prediction.

Smart Turn v3.2 (Daily / Pipecat, BSD-2-Clause; model card
https://huggingface.co/pipecat-ai/smart-turn-v3, code https://github.com/pipecat-ai/smart-turn)
is a Whisper Tiny encoder with a linear head, 8 M parameters, int8-quantised to an 8.3 MB
ONNX file. Input ``input_features``: float32 ``(batch, 80, 800)`` (see
:mod:`voicehost_smart_turn.features`); output ``logits``: float32 ``(batch, 1)``, which
despite its name is already the sigmoid probability that the turn is complete (Pipecat's
``local_smart_turn_v3.py`` reads it as such and predicts complete when it is above 0.5).

Where the file is: :mod:`voicehost_smart_turn.weights` (the ``pipecat-ai`` wheel's copy
by default; Pipecat itself is never imported).

ONNX Runtime is imported when a model is loaded, never at plugin import. Sessions run on one
thread each (``intra_op_num_threads=1``, ``inter_op_num_threads=1``, sequential), as Pipecat
runs it by default (``cpu_count=1``); ``InferenceSession.run`` is thread-safe, so one
session serves every call.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Final

import numpy as np

from voicehost import ConfigError
from voicehost_smart_turn.features import log_mel_features, pcm16_to_float, window_last

if TYPE_CHECKING:
    import onnxruntime

__all__ = ["SmartTurnModel", "load_model"]

logger = logging.getLogger(__name__)

_INPUT: Final = "input_features"


class SmartTurnModel:
    """One loaded Smart Turn ONNX session (shared by every call of the process).

    Attributes:
        path: the ONNX file.
        load_ms: how long loading took, ms.
    """

    def __init__(self, path: Path, session: onnxruntime.InferenceSession, load_ms: float):
        self.path = path
        self.session = session
        self.load_ms = load_ms

    def probability(self, audio: bytes) -> float:
        """The probability, 0-1, that the turn ending with ``audio`` is complete. Blocking
        (≈ 10-100 ms of one CPU thread): call it from a worker thread.

        Args:
            audio: PCM16 little-endian mono 16 kHz; only the last 8 s are used, shorter audio
                is padded with silence in front (see :func:`~.features.window_last`).

        Raises:
            ValueError: ``audio`` has an odd number of bytes.
            onnxruntime's errors: the session failed.
        """
        features = log_mel_features(window_last(pcm16_to_float(audio)))
        (output,) = self.session.run(None, {_INPUT: features[np.newaxis]})
        return float(np.clip(np.asarray(output).reshape(-1)[0], 0.0, 1.0))


_models: dict[Path, SmartTurnModel] = {}
_lock = threading.Lock()


def load_model(path: Path) -> SmartTurnModel:
    """Load the ONNX file at ``path`` on one CPU thread, once per process (later calls, from
    any thread, get the same object). Blocking: ≈ 0.1 s.

    Raises:
        ConfigError: the file is not a loadable ONNX model, or has no ``input_features`` input.
    """
    key = path.resolve()
    with _lock:
        cached = _models.get(key)
        if cached is not None:
            return cached
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        started = time.perf_counter()
        try:
            session = onnxruntime.InferenceSession(
                str(key), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:
            raise ConfigError(f"smart-turn: cannot load {str(key)!r}: {exc}") from exc
        inputs = [i.name for i in session.get_inputs()]
        if inputs != [_INPUT]:
            raise ConfigError(
                f"smart-turn: {str(key)!r} takes {inputs}, not [{_INPUT!r}]: "
                "not a Smart Turn v3 model"
            )
        model = SmartTurnModel(key, session, (time.perf_counter() - started) * 1000)
        logger.info("Smart Turn model %s loaded in %.0f ms", key.name, model.load_ms)
        _models[key] = model
        return model
