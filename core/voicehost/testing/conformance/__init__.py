"""The conformance kit: the provider contracts as pytest tests a plugin inherits.

A plugin author subclasses one class per provider kind in a test module, names the class
``Test…`` so pytest collects it, and fills in a few fixtures and attributes; pytest then runs
every inherited ``test_…`` method against the provider:

* :class:`TranscriptionConformance` — speech to text: ``connect``/``close`` idempotent,
  ``send_audio`` never blocks or raises (also before ``connect``, after ``close`` and while
  the vendor stalls), callbacks on the event loop thread, the clip's words in the final
  transcript, finals flushed by ``close``, a refused connection reported as a
  :class:`~voicehost.ProviderError`.
* :class:`SpeechConformance` — text to speech: the declared output format is what comes out,
  any chunking of it plays the same, ``aclose()`` (or cancelling the consumer) stops the
  stream promptly, vendor failures raise :class:`~voicehost.ProviderError`.
* :class:`ResponderConformance` — responders: replies stream text and actions, the
  greeting streams text, a hang-up or transfer comes last, key presses (``dtmf``) are
  answered with reply items, ``aclose`` is idempotent.
* :class:`ConversationConformance` — speech to speech: ``close`` idempotent, ``send_audio``
  never blocks or raises (before ``connect``, live, after ``close``), ``events()`` ends after
  ``close``, a refused endpoint raises :class:`~voicehost.ProviderError` from ``connect``, the
  greeting comes as ``AudioOut`` in the declared output format then ``ResponseDone``,
  ``truncate``/``say``/``send_tool_result`` work on a live session. The plugin author
  supplies the vendor (a fake) through the ``config`` fixture.

Every class shares the config checks: ``config`` is an instance of the provider's
``config_class``, ``is_configured`` accepts it, and every key has a ``description``. The
``config`` fixture parses :attr:`config_table` with the host's parser
(:func:`config_from_table`), so a table the host would refuse fails here too.

The kit needs ``pytest`` and ``pytest-asyncio`` (its tests are ``async def``, marked
``asyncio``, so they run in ``strict`` mode as in ``auto``; your own async fixtures need
``@pytest_asyncio.fixture`` in ``strict`` mode). Time bounds are class attributes; they are
generous on purpose, to catch hangs and blocking, never to grade speed: a loaded CI machine
must not fail a correct provider.
"""

from voicehost.testing.conformance.conversation import ConversationConformance
from voicehost.testing.conformance.responders import ResponderConformance
from voicehost.testing.conformance.stt import TranscriptionConformance
from voicehost.testing.conformance.support import (
    FRAME_BYTES,
    CallbackEvent,
    CallbackRecorder,
    Clip,
    Signal,
    config_from_table,
    contains_words,
    frames,
    load_clip,
    measure,
    misreadings,
    provider_kind,
    reframe,
    refusing_endpoint,
    stalled_endpoint,
    undocumented_keys,
    words,
)
from voicehost.testing.conformance.tts import SpeechConformance

__all__ = [
    "FRAME_BYTES",
    "CallbackEvent",
    "CallbackRecorder",
    "Clip",
    "ConversationConformance",
    "ResponderConformance",
    "Signal",
    "SpeechConformance",
    "TranscriptionConformance",
    "config_from_table",
    "contains_words",
    "frames",
    "load_clip",
    "measure",
    "misreadings",
    "provider_kind",
    "reframe",
    "refusing_endpoint",
    "stalled_endpoint",
    "undocumented_keys",
    "words",
]
