"""Text helpers for streaming TTS: cut text that arrives in pieces into sentences."""

from __future__ import annotations

import re
from collections.abc import AsyncIterable, AsyncIterator

# A sentence ends at . ! ? (or … ; :) followed by whitespace, not inside "e.g." or "3.5".
_SENTENCE_END = re.compile(r"(?<=[^\s.][.!?…])[\"')\]]*\s+|(?<=[;:])\s+(?=\S{12,})")
_ABBREVIATIONS = frozenset(
    {"mr.", "mrs.", "ms.", "dr.", "st.", "e.g.", "i.e.", "etc.", "vs.", "no.", "jr.", "sr."}
)


def split_sentences(text: str) -> tuple[list[str], str]:
    """Split ``text`` into complete sentences and the unfinished rest.

    Returns:
        ``(sentences, rest)``: each sentence stripped; ``rest`` is text after the last
        sentence end (possibly empty), to be joined with what arrives next.
    """
    out: list[str] = []
    start = 0
    for match in _SENTENCE_END.finditer(text):
        candidate = text[start : match.start()].strip()
        last_word = candidate.rsplit(None, 1)[-1].lower() if candidate else ""
        if last_word in _ABBREVIATIONS:
            continue
        if candidate:
            out.append(text[start : match.end()].strip())
        start = match.end()
    return out, text[start:]


async def sentences(chunks: AsyncIterable[str]) -> AsyncIterator[str]:
    """Re-chunk streamed text into whole sentences, the last one flushed at the end."""
    buffer = ""
    async for chunk in chunks:
        buffer += chunk
        done, buffer = split_sentences(buffer)
        for sentence in done:
            yield sentence
    if buffer.strip():
        yield buffer.strip()
