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


#: Where :func:`first_clause` may cut: a comma, semicolon or colon followed by a space, or a
#: spaced dash.
_CLAUSE_END = re.compile(r"(?<=[,;:])\s+|\s+[-–—]\s+")
#: A sentence shorter than this many words is not cut (its synthesis is quick anyway).
CLAUSE_MIN_SENTENCE_WORDS = 8
#: The clause has at least this many words: its audio (about a second) must last longer than
#: the synthesis of the rest, which starts once the clause's first audio is out, or the
#: caller hears a gap.
CLAUSE_MIN_WORDS = 3
#: The rest after the cut keeps at least this many words.
CLAUSE_MIN_REST_WORDS = 4


def first_clause(sentence: str) -> tuple[str, str]:
    """Cut a reply's first sentence after its first clause, for a quicker first audio: the
    TTS renders the short clause first ("We are open Monday to Friday,") and the rest while it
    plays (RealtimeTTS's ``fast_sentence_fragment``).

    Returns:
        ``(clause, rest)``, both stripped, ``clause + " " + rest`` being the sentence (its
        punctuation kept); ``(sentence, "")`` when there is no clause end, the sentence is
        shorter than :data:`CLAUSE_MIN_SENTENCE_WORDS` words, the first clause shorter than
        :data:`CLAUSE_MIN_WORDS` (then the sentence is not cut at all), or the rest would be
        shorter than :data:`CLAUSE_MIN_REST_WORDS`.
    """
    sentence = sentence.strip()
    if len(sentence.split()) < CLAUSE_MIN_SENTENCE_WORDS:
        return sentence, ""
    match = _CLAUSE_END.search(sentence)
    if match is None:
        return sentence, ""
    clause, rest = sentence[: match.end()].strip(), sentence[match.end() :].strip()
    if len(clause.split()) < CLAUSE_MIN_WORDS or len(rest.split()) < CLAUSE_MIN_REST_WORDS:
        return sentence, ""
    return clause, rest


def speech_pieces(text: str) -> list[str]:
    """The pieces a whole reply ``text`` is said in, each its own reply and mark: its
    sentences, the first cut by :func:`first_clause`."""
    done, rest = split_sentences(text)
    pieces = [*done, rest.strip()] if rest.strip() else done
    if pieces:
        clause, after = first_clause(pieces[0])
        if after:
            pieces[:1] = [clause, after]
    return pieces
