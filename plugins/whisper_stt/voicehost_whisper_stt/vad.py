"""Streaming Silero VAD on 16 kHz audio, with the model faster-whisper ships.

faster-whisper bundles Silero VAD v6 as ``faster_whisper/assets/silero_vad_v6.onnx`` and runs
it over a whole file at once (``faster_whisper.vad.get_speech_timestamps``). Here the same
network runs one 512-sample (32 ms) window at a time, carrying the LSTM state (``h``, ``c``)
and the 64-sample context between windows exactly as the batch code does, so a live call gets
the same speech probabilities a file would. One window costs ~0.1 ms of one CPU core.

One ONNX Runtime session is shared by the whole process (``InferenceSession.run`` is thread
safe); each stream owns only its small recurrent state.
"""

from __future__ import annotations

import os
import threading
from typing import Final

import numpy as np

#: Sample rate the network runs at, Hz.
SAMPLE_RATE: Final = 16_000
#: Samples per VAD window (32 ms at 16 kHz), the size Silero is trained on.
WINDOW: Final = 512
#: Milliseconds per VAD window.
WINDOW_MS: Final = WINDOW * 1000 // SAMPLE_RATE
_CONTEXT: Final = 64
#: Windows below this probability count as quiet (noise and line silence score < 0.05).
QUIET_PROBABILITY: Final = 0.1
#: After this much unbroken quiet the recurrent state is reset. Silero's LSTM state drifts
#: over long silences (a greeting, hold): measured on real 8 kHz callers after 15 s of line
#: silence, onsets came 0.36-1.8 s late and words were lost; resetting every 3 s of quiet
#: brought them back within 172 ms.
QUIET_RESET_MS: Final = 3000

_session_lock = threading.Lock()
_session: object | None = None


def _load_session() -> object:
    """The process-wide ONNX Runtime session of faster-whisper's Silero model (lazy)."""
    global _session
    with _session_lock:
        if _session is None:
            import onnxruntime
            from faster_whisper.utils import get_assets_path

            options = onnxruntime.SessionOptions()
            options.inter_op_num_threads = 1
            options.intra_op_num_threads = 1
            options.log_severity_level = 4
            path = os.path.join(get_assets_path(), "silero_vad_v6.onnx")
            _session = onnxruntime.InferenceSession(
                path, providers=["CPUExecutionProvider"], sess_options=options
            )
        return _session


def preload() -> None:
    """Load the shared Silero session now (blocking; call it off the event loop)."""
    _load_session()


class StreamingVad:
    """Speech probabilities for one audio stream, one 32 ms window at a time.

    Feed float32 samples in [-1, 1) at 16 kHz to :meth:`process`; it returns one probability
    (0–1) per complete 512-sample window and keeps the remainder for the next call.
    """

    def __init__(self) -> None:
        self._session = _load_session()
        self._h = np.zeros((1, 1, 128), dtype=np.float32)
        self._c = np.zeros((1, 1, 128), dtype=np.float32)
        self._context = np.zeros(_CONTEXT, dtype=np.float32)
        self._quiet_windows = 0

    def window_probability(self, window: np.ndarray) -> float:
        """Speech probability of exactly one 512-sample window (advances the state).

        Every :data:`QUIET_RESET_MS` of unbroken windows below :data:`QUIET_PROBABILITY`
        resets it, so speech after a long silence meets the state that speech after a short
        one does (at most that much quiet since a fresh start).
        """
        batch = np.concatenate([self._context, window])[None, :]
        out, self._h, self._c = self._session.run(  # type: ignore[attr-defined]
            None, {"input": batch, "h": self._h, "c": self._c}
        )
        self._context = window[-_CONTEXT:].copy()
        probability = float(np.asarray(out).ravel()[0])
        self._quiet_windows = self._quiet_windows + 1 if probability < QUIET_PROBABILITY else 0
        if self._quiet_windows * WINDOW_MS >= QUIET_RESET_MS:
            self.reset()
        return probability

    def reset(self) -> None:
        """Forget the recurrent state (a new, unrelated stream, or a long silence)."""
        self._h[:] = 0
        self._c[:] = 0
        self._context[:] = 0
        self._quiet_windows = 0
