"""Sentence splitting for streamed TTS text."""

from __future__ import annotations

from voicehost.text import first_clause, sentences, speech_pieces, split_sentences


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


def test_a_long_first_sentence_is_cut_after_its_first_clause_of_three_words_or_more():
    hours = "We are open Monday to Friday, from nine in the morning to five in the evening."
    assert first_clause(hours) == (
        "We are open Monday to Friday,",
        "from nine in the morning to five in the evening.",
    )
    # the first clause end decides: too short a clause ("Sorry,", "Well,"), too short a
    # sentence, too short a rest, a comma inside a number: not cut
    for sentence in (
        "Sorry, I can only tell you our opening hours or who I am.",
        "Well, you know - that is a question I cannot answer now.",
        "Yes, we are open today.",
        "We are open every single weekday of the year, mostly.",
        "It costs 1,000 dollars for the whole family to go there.",
    ):
        assert first_clause(sentence) == (sentence, "")
    clause, rest = first_clause("The line is busy right now - please call again in an hour.")
    assert (clause, rest) == ("The line is busy right now -", "please call again in an hour.")


def test_a_whole_reply_is_said_in_its_sentences_the_first_cut_after_its_clause():
    hours = "We are open Monday to Friday, from nine in the morning to five in the evening."
    assert speech_pieces(hours + " Anything else?") == [
        "We are open Monday to Friday,",
        "from nine in the morning to five in the evening.",
        "Anything else?",
    ]
    assert speech_pieces("Hello there. How are you") == ["Hello there.", "How are you"]
    assert speech_pieces("  ") == []
