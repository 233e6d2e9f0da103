"""Reconnect, give-up and auth behaviour of both cloud STT plugins on their real SDKs against
the fakes: the shared logic of voicehost.stt_stream wired to each vendor's errors."""

from __future__ import annotations

from typing import Any

import pytest

from voicehost import (
    ProviderAuthError,
    ProviderConnectionError,
    ProviderError,
    TranscriptionRequest,
)
from voicehost_deepgram_stt import DeepgramTranscriptionProvider
from voicehost_openai_stt import OpenAITranscriptionProvider

PROVIDERS = {"openai": OpenAITranscriptionProvider, "deepgram": DeepgramTranscriptionProvider}


@pytest.fixture(params=sorted(PROVIDERS))
def vendor(request: pytest.FixtureRequest) -> tuple[Any, Any, Any]:
    """(fake, config, provider) for each cloud STT vendor."""
    name = request.param
    fake = request.getfixturevalue(f"{name}_fake")
    config = request.getfixturevalue(f"{name}_config")
    return fake, config, PROVIDERS[name]()


def open_session(vendor: tuple[Any, Any, Any], recorder: Any, **changes: Any) -> Any:
    _, base, provider = vendor
    config = type(base).model_validate({**base.model_dump(), **changes})
    request = TranscriptionRequest(config=config, callbacks=recorder.callbacks)
    return provider.create_session(request)


async def test_transient_refusal_at_connect_is_retried(vendor, recorder):
    fake = vendor[0]
    fake.refuse_next = [503]
    session = open_session(vendor, recorder)
    await session.connect()
    assert session.connected
    assert fake.refusals == [503] and len(fake.connections) == 1
    await session.close()


async def test_vendor_down_at_connect_raises_after_the_tries(vendor, recorder):
    fake = vendor[0]
    fake.refuse_all = 503
    session = open_session(vendor, recorder, reconnect_attempts=3)
    with pytest.raises(ProviderConnectionError, match="3 tries"):
        await session.connect()
    assert fake.refusals == [503, 503, 503]


async def test_gives_up_mid_call_with_one_on_error_and_the_call_goes_on(
    vendor, recorder, clips, speak, eventually
):
    fake = vendor[0]
    session = open_session(vendor, recorder, reconnect_attempts=2)
    await session.connect()
    fake.refuse_all = 503
    fake.drop()
    await recorder.wait_for(lambda: recorder.errors)
    (error,) = recorder.errors
    assert isinstance(error, ProviderConnectionError)
    assert fake.refusals == [503, 503]
    assert session.state == "failed"
    await speak(session, clips.spoken("hello"))  # never raises; dropped
    assert session.dropped_bytes >= len(clips.spoken("hello"))
    await session.close()
    assert len(recorder.errors) == 1
    assert len(fake.connections) == 1


async def test_401_while_reconnecting_is_reported_once_never_retried(vendor, recorder):
    fake = vendor[0]
    session = open_session(vendor, recorder)
    await session.connect()
    fake.refuse_all = 401
    fake.drop()
    await recorder.wait_for(lambda: recorder.errors)
    await session.close()
    (error,) = recorder.errors
    assert isinstance(error, ProviderAuthError) and error.status == 401
    assert fake.refusals == [401]  # one try, no backoff loop


async def test_close_is_clean_and_idempotent(vendor, recorder, clips, speak):
    fake = vendor[0]
    session = open_session(vendor, recorder)
    await session.connect()
    await speak(session, clips.spoken("thanks"))
    await recorder.wait_for(lambda: recorder.finals)
    await session.close()
    await session.close()
    assert session.state == "closed" and not session.connected
    assert fake.current.close_code == 1000
    assert fake.current.violations == []
    assert recorder.errors == []


async def test_a_refused_request_is_not_retried(vendor, recorder):
    fake = vendor[0]
    fake.refuse_next = [400]
    session = open_session(vendor, recorder)
    with pytest.raises(ProviderError) as caught:
        await session.connect()
    assert not isinstance(caught.value, ProviderConnectionError | ProviderAuthError)
    assert caught.value.status == 400
    assert fake.refusals == [400]
