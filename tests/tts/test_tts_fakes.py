"""The TTS vendor fakes refuse what the vendors refuse, so a plugin sending a wrong request
fails its tests instead of passing against a lenient fake."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest
from fakes.elevenlabs import FakeElevenLabs
from fakes.openai_tts import FakeOpenAITTS

SPEECH_OK = {"model": "gpt-4o-mini-tts", "input": "Hi.", "voice": "coral", "response_format": "pcm"}
OPENAI_HEADERS = {"Authorization": "Bearer sk-test", "Accept": "application/octet-stream"}


async def _post(url: str, body: Any, headers: dict[str, str]) -> tuple[int, Any, bytes]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, json=body, headers=headers) as r,
    ):
        raw = await r.read()
        try:
            return r.status, json.loads(raw), raw
        except ValueError:
            return r.status, None, raw


async def test_openai_fake_accepts_the_documented_request(openai_fake: FakeOpenAITTS):
    status, _, raw = await _post(f"{openai_fake.base_url}/audio/speech", SPEECH_OK, OPENAI_HEADERS)
    assert status == 200
    assert raw == openai_fake.audio


@pytest.mark.parametrize(
    ("change", "headers", "status", "param"),
    [
        ({}, {"Authorization": "Bearer nope"}, 401, None),
        ({"response_format": "mp3"}, {}, 400, "response_format"),
        ({"voice": "voice_1234"}, {}, 400, "voice"),  # custom voices go as {"id": …}
        ({"speed": 5}, {}, 400, "speed"),
        ({"input": ""}, {}, 400, "input"),
        ({"input": "x" * 4097}, {}, 400, "input"),
        ({"model": "tts-1", "instructions": "calm"}, {}, 400, "instructions"),
        ({"format": "pcm"}, {}, 400, "format"),
        ({}, {"Accept": "audio/*"}, 400, None),
    ],
)
async def test_openai_fake_refuses_what_openai_refuses(openai_fake, change, headers, status, param):
    body = {**SPEECH_OK, **change}
    got, error, _ = await _post(
        f"{openai_fake.base_url}/audio/speech", body, {**OPENAI_HEADERS, **headers}
    )
    assert got == status
    assert set(error["error"]) == {"message", "type", "param", "code"}
    if param is not None:
        assert error["error"]["param"] == param
    assert openai_fake.completed == 0


@pytest.mark.parametrize(
    ("query", "body", "status"),
    [
        ("output_format=ulaw_8000", {"text": "Hi."}, 200),
        ("output_format=mp3_44100_128", {"text": "Hi."}, 422),  # the fake serves μ-law only
        ("output_format=ulaw_8000&speed=2", {"text": "Hi."}, 422),
        ("output_format=ulaw_8000", {"text": ""}, 422),
        ("output_format=ulaw_8000", {"text": "Hi.", "voice": "x"}, 422),
        ("output_format=ulaw_8000", {"text": "Hi.", "voice_settings": {"speed": 3}}, 422),
    ],
)
async def test_elevenlabs_http_fake_checks_query_and_body(elevenlabs_fake, query, body, status):
    url = f"{elevenlabs_fake.base_url}/v1/text-to-speech/voice123/stream?{query}"
    got, _, raw = await _post(url, body, {"xi-api-key": "xi-test"})
    assert got == status
    if status == 200:
        assert raw == elevenlabs_fake.audio


async def _ws_session(fake: FakeElevenLabs, messages: list[dict[str, Any]], headers=None):
    url = (
        f"{fake.base_url}/v1/text-to-speech/voice123/stream-input"
        "?model_id=eleven_flash_v2_5&output_format=ulaw_8000"
    )
    received: list[Any] = []
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url, headers=headers or {}) as ws:
            for message in messages:
                await ws.send_str(json.dumps(message))
            async for msg in ws:
                received.append(json.loads(msg.data))
            return received, ws.close_code


async def test_elevenlabs_ws_fake_takes_the_key_in_the_first_message(elevenlabs_fake):
    received, code = await _ws_session(
        elevenlabs_fake,
        [
            {"text": " ", "xi_api_key": "xi-test"},
            {"text": "Hi there. ", "flush": True},
            {"text": ""},
        ],
    )
    assert code == 1000
    assert received[-1] == {"isFinal": True}
    assert all("audio" in m for m in received[:-1])


@pytest.mark.parametrize(
    ("messages", "error"),
    [
        ([{"text": " "}, {"text": ""}], "invalid_api_key"),  # no key anywhere
        ([{"text": "Hi "}], "invalid_request"),  # the first message must be " "
        (
            [{"text": " ", "xi-api-key": "xi-test"}, {"text": "no trailing space"}],
            "invalid_request",
        ),
    ],
)
async def test_elevenlabs_ws_fake_closes_1008_on_protocol_errors(elevenlabs_fake, messages, error):
    received, code = await _ws_session(elevenlabs_fake, messages)
    assert code == 1008
    assert received[-1]["error"] == error
