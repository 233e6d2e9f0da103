"""Webhook tools: a tool call POSTed to the tool's URL with aiohttp.

The body::

    {"tool": "book_appointment",
     "arguments": {"day": "monday"},
     "call": {"call_sid": "CA…", "from": "+1555…", "to": "+1555…", "direction": "inbound"}}

with the tool's ``headers``; the answer must be a 2xx with a JSON body (any JSON value),
which is given to the model as the tool's result. A non-2xx status, a body that is not JSON,
a connection error or no answer within the tool's ``timeout_s`` raise
:class:`voicehost.ToolError` (an error result for the model).

Imported on the first webhook tool call (or by ``preload``), not with the plugin.
"""

from __future__ import annotations

from typing import Any

import aiohttp

from voicehost import ToolError
from voicehost_openai_responder.config import WebhookToolConfig

__all__ = ["WebhookTools"]


class WebhookTools:
    """POSTs webhook tool calls through one :class:`aiohttp.ClientSession` (made on first
    use, on the serving event loop; closed by :meth:`aclose`)."""

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None

    async def post(self, tool: WebhookToolConfig, payload: dict[str, Any]) -> Any:
        """POST ``payload`` to ``tool.url``; the decoded JSON answer.

        Raises:
            ToolError: a non-2xx status, a body that is not JSON, a connection error or a
                timeout; the message says which, for the model.
        """
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        timeout = aiohttp.ClientTimeout(total=tool.timeout_s)
        try:
            async with self._session.post(
                tool.url, json=payload, headers=tool.headers, timeout=timeout
            ) as response:
                if response.status // 100 != 2:
                    text = (await response.text())[:200]
                    raise ToolError(f"the tool's service answered HTTP {response.status}: {text}")
                try:
                    return await response.json(content_type=None)
                except ValueError:
                    raise ToolError(
                        "the tool's service answered with a body that is not JSON"
                    ) from None
        except TimeoutError:
            raise ToolError(
                f"the tool's service did not answer within {tool.timeout_s:g} s"
            ) from None
        except aiohttp.ClientError as exc:
            raise ToolError(f"the tool's service could not be reached ({exc!r})") from None

    async def aclose(self) -> None:
        """Close the HTTP session. Idempotent."""
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None
