"""Cleaning Whisper's text: its inventions on noise and its loops.

Whisper (``tiny.en`` most of all) invents subtitle phrases on silence or noise ("Thanks for
watching") and, on babble or padding, repeats itself; these helpers take both out of a
transcript without touching what a caller really says twice ("Bye bye.", "No. No.").
"""

from __future__ import annotations

import re

__all__ = ["collapse_repeats", "is_hallucination", "repeats", "sentences", "words"]

#: Whisper's well-known inventions on noise or silence (from its YouTube-subtitle training
#: data): a segment that is only one of these, or only a bracketed sound annotation such as
#: "[BLANK_AUDIO]" / "(music)", is dropped. Ordinary short replies ("Thank you.") are kept.
_HALLUCINATIONS = frozenset(
    {
        "thanks for watching",
        "thank you for watching",
        "thanks for watching and see you next time",
        "please subscribe",
        "subscribe to my channel",
        "like and subscribe",
    }
)
_ANNOTATION = re.compile(r"^\s*[\[(][^\])]*[\])]\s*$")
_NON_WORD = re.compile(r"[^\w\s']")


#: A phrase said three times or more in a row ("come on, come on, come on"): Whisper looping
#: on babble or padding, not the caller; kept once.
_PHRASE_LOOP = re.compile(r"\b(\w.{2,80}?)(?:[\s,.!?…]+\1\b){2,}", re.IGNORECASE)
_SENTENCE_BREAK = re.compile(r"(?<=[.!?…])\s+")
#: The longest run of sentences recognised as a loop.
_MAX_LOOP_SENTENCES = 3


def collapse_repeats(text: str) -> str:
    """``text`` without Whisper's loops: a phrase repeated three times or more in a row is
    kept once; a run of one to three sentences (three words or more in all) that repeats the
    run just before it is dropped, and then so is a last sentence that only starts a run again
    ("It's easy to tell the depth of a well." four times → once; "The juice of lemons makes
    fine punch. The wagon moved on well oiled wheels." twice and "The wagon moved on well" →
    once; measured on ``tests/data/noise`` babble at 20 dB). Shorter repeats ("Bye bye.",
    "No. No.") stay."""
    text = _PHRASE_LOOP.sub(r"\1", text.strip())
    kept: list[str] = []
    looped = False
    for sentence in sentences(text):
        kept.append(sentence)
        for run in range(1, _MAX_LOOP_SENTENCES + 1):
            if len(kept) < 2 * run:
                break
            tail = [w for s in kept[-run:] for w in words(s)]
            if len(tail) >= 3 and tail == [w for s in kept[-2 * run : -run] for w in words(s)]:
                del kept[-run:]
                looped = True
                break
    if looped and len(kept) >= 2:  # the loop cut off by the end of the decode
        last = words(kept[-1])
        for run in range(1, min(_MAX_LOOP_SENTENCES, len(kept) - 1) + 1):
            block = [w for s in kept[-1 - run : -1] for w in words(s)]
            if len(last) >= 3 and len(block) > len(last) and block[: len(last)] == last:
                kept.pop()
                break
    return " ".join(kept)


def is_hallucination(segment_text: str) -> bool:
    """True for a segment that is only a known silence hallucination or a sound annotation."""
    if _ANNOTATION.match(segment_text):
        return True
    said = " ".join(words(segment_text))
    return not said or said in _HALLUCINATIONS


def sentences(text: str) -> list[str]:
    """``text`` split after each ".", "!", "?" or "…" followed by a space."""
    return _SENTENCE_BREAK.split(text.strip()) if text.strip() else []


def words(text: str) -> list[str]:
    """The lower-case words of ``text``, punctuation removed (apostrophes kept)."""
    return _NON_WORD.sub(" ", text.lower()).split()


def repeats(text: str, earlier: str, *, min_words: int = 3) -> bool:
    """True when ``text`` contains all of ``earlier``'s words in a row, and there are at
    least ``min_words`` of them (Whisper saying an earlier sentence again)."""
    said, heard = words(earlier), words(text)
    if len(said) < min_words:
        return False
    return any(heard[i : i + len(said)] == said for i in range(len(heard) - len(said) + 1))
