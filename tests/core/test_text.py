"""Sentence splitting for streamed TTS text."""

from __future__ import annotations

from voicehost.text import sentences, split_sentences


def test_split_keeps_abbreviations_and_decimals_together():
    done, rest = split_sentences("Dr. Smith is in. It costs 3.50 dollars! Is that ok? And then")
    assert done == ["Dr. Smith is in.", "It costs 3.50 dollars!", "Is that ok?"]
    assert rest == "And then"


def test_split_without_an_end_returns_everything_as_rest():
    assert split_sentences("no end yet") == ([], "no end yet")


async def test_sentences_rechunks_a_stream_and_flushes_the_tail():
    async def chunks():
        for piece in ["Hel", "lo there. How ", "are you?", " Fine", " thanks"]:
            yield piece

    assert [s async for s in sentences(chunks())] == ["Hello there.", "How are you?", "Fine thanks"]
