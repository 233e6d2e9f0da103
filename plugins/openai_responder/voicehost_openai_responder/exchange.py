"""What one streamed completion gives back, without the SDK: :class:`ToolCall`,
:class:`ChatRound` and :class:`ChatError` (shared by :mod:`.chat`, :mod:`.tools` and
:mod:`.responder`)."""

from __future__ import annotations

from typing import Literal

import attrs

__all__ = ["ChatError", "ChatRound", "ErrorKind", "ToolCall"]

#: What the responder does about a failed completion: ``"auth"`` — the key was refused
#: (401/403; reported as a configuration error, never retried); ``"retry"`` — worth one more
#: try before the first token (timeout, unreachable, dropped, 408/409/429/5xx); ``"fatal"``
#: — anything else (a 400, an unknown model, an error event in the stream).
ErrorKind = Literal["auth", "retry", "fatal"]


@attrs.frozen
class ToolCall:
    """One tool call of the model, its deltas joined.

    Attributes:
        id: the model's call id (``call_…``).
        name: the function name.
        arguments: the arguments' JSON text, as the model wrote it (maybe not JSON at all).
    """

    id: str
    name: str
    arguments: str


@attrs.define
class ChatRound:
    """What one completion produced besides its text (filled while it streams).

    Attributes:
        started: a text or tool-call delta arrived (a failure after that is not retried).
        tool_calls: the complete tool calls, in the model's order (set at the end).
        finish_reason: of the last chunk (``"stop"``, ``"tool_calls"``, ``"length"`` …).
    """

    started: bool = False
    tool_calls: list[ToolCall] = attrs.field(factory=list)
    finish_reason: str | None = None


class ChatError(Exception):
    """A completion failed; ``kind`` (:data:`ErrorKind`) says what to do, ``status`` is the
    HTTP status when there was one."""

    def __init__(self, kind: ErrorKind, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.kind: ErrorKind = kind
        self.status = status
