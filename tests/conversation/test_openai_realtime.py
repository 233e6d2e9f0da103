"""The ``openai-realtime`` conversation provider against the fake Realtime API: auth, the
``session.update`` it sends and the acknowledgement it checks, audio in, every server event
mapped to its contract event, tool results, truncation, history restore, the greeting, drops
and session expiry."""

from __future__ import annotations

import json

import pytest

from voicehost import (
    AudioOut,
    BotTranscript,
    CallerSpeechStarted,
    CallerSpeechStopped,
    CallerTranscript,
    ConversationError,
    ConversationTurn,
    ProviderAuthError,
    ProviderError,
    ResponseDone,
    SessionExpiring,
    ToolCall,
    ToolUse,
)
from voicehost_openai_realtime import OpenAIRealtimeConfig

GREETING_AUDIO = bytes(range(256)) * 10  # 320 ms of μ-law


def _with(config: OpenAIRealtimeConfig, **changes: object) -> OpenAIRealtimeConfig:
    return config.model_copy(update=changes)


async def test_wrong_key_is_an_auth_error(realtime_fake, realtime_config, open_session):
    bad = _with(realtime_config, api_key="sk-wrong")
    with pytest.raises(ProviderAuthError, match="api_key"):
        await open_session(bad)
    assert realtime_fake.refusals == [401]


async def test_session_update_shape_and_query(realtime_fake, realtime_config, open_session):
    config = _with(
        realtime_config,
        eagerness="low",
        interrupt_response=False,
        create_response=False,
        transcription_model="gpt-4o-transcribe",
        voice="cedar",
        temperature=0.7,
    )
    await open_session(config, instructions="Today is Monday. Be brief.")
    conn = realtime_fake.current
    assert conn.path == "/v1/realtime"
    assert conn.query == {"model": ["gpt-realtime"], "temperature": ["0.7"]}
    assert conn.headers["authorization"] == "Bearer sk-test"
    [update] = conn.texts("session.update")
    assert update["session"] == {
        "type": "realtime",
        "model": "gpt-realtime",
        "output_modalities": ["audio"],
        "instructions": "Today is Monday. Be brief.",
        "audio": {
            "input": {
                "format": {"type": "audio/pcmu"},
                "turn_detection": {
                    "type": "semantic_vad",
                    "eagerness": "low",
                    "create_response": False,
                    "interrupt_response": False,
                },
                "transcription": {"model": "gpt-4o-transcribe"},
            },
            "output": {"format": {"type": "audio/pcmu"}, "voice": "cedar"},
        },
        "tools": [
            {
                "type": "function",
                "name": "hangup",
                "description": "End the call.",
                "parameters": {"type": "object", "properties": {}},
            },
            {
                "type": "function",
                "name": "send_dtmf",
                "description": "Press phone keys.",
                "parameters": {
                    "type": "object",
                    "properties": {"digits": {"type": "string"}},
                    "required": ["digits"],
                },
            },
        ],
        "tool_choice": "auto",
    }
    assert realtime_fake.violations == []


async def test_defaults_follow_the_seed(realtime_fake, realtime_config, open_session):
    session, _ = await open_session(realtime_config)
    assert session.connected
    [update] = realtime_fake.current.texts("session.update")
    audio = update["session"]["audio"]
    assert audio["input"]["turn_detection"]["eagerness"] == "high"
    assert audio["input"]["turn_detection"]["interrupt_response"] is True
    assert audio["input"]["transcription"] == {"model": "gpt-4o-mini-transcribe"}
    assert audio["output"]["voice"] == "marin"
    assert realtime_fake.current.query["temperature"] == ["0.8"]


@pytest.mark.parametrize(
    "override",
    [
        {"audio": {"output": {"format": {"type": "audio/pcm", "rate": 24000}}}},
        {"audio": {"input": {"format": {"type": "audio/pcm", "rate": 24000}}}},
        {"audio": {"input": {"turn_detection": {"type": "server_vad"}}}},
        {"tools": []},
    ],
)
async def test_an_ack_that_did_not_apply_is_an_error(
    realtime_fake, realtime_config, open_session, override
):
    realtime_fake.ack_override = override
    with pytest.raises(ProviderError) as caught:
        await open_session(realtime_config)
    assert caught.value.code == "session_config_mismatch"


async def test_a_refused_session_update_is_an_error(realtime_fake, realtime_config, open_session):
    # A voice the vendor does not know: the fake answers with an `error` event.
    with pytest.raises(ProviderError, match=r"session\.update refused") as caught:
        await open_session(_with(realtime_config, voice="nosuch"))
    assert caught.value.code == "invalid_value"


async def test_audio_appends_arrive_in_order_and_byte_exact(
    realtime_fake, realtime_config, open_session
):
    session, _ = await open_session(realtime_config)
    frames = [bytes([i % 256]) * 160 for i in range(60)]
    for frame in frames:
        session.send_audio(frame)
    expected = b"".join(frames)
    await realtime_fake.wait_for(lambda: len(realtime_fake.current.audio) >= len(expected))
    assert bytes(realtime_fake.current.audio) == expected
    assert realtime_fake.violations == []


async def test_server_events_map_to_contract_events(realtime_fake, realtime_config, open_session):
    _, log = await open_session(realtime_config)
    item = await realtime_fake.caller_says("what time do you open")
    spoken = await realtime_fake.respond(GREETING_AUDIO, "We open at nine.", chunk_ms=100)
    await log.wait_for(lambda: log.of(ResponseDone))
    kinds = [type(e) for e in log.events]
    assert kinds[:3] == [CallerSpeechStarted, CallerSpeechStopped, CallerTranscript]
    assert log.of(CallerTranscript) == [CallerTranscript("what time do you open", item)]
    audio = log.of(AudioOut)
    assert len(audio) == 4  # 320 ms in 100 ms deltas
    assert b"".join(a.audio for a in audio) == GREETING_AUDIO
    assert {(a.item_id, a.response_id) for a in audio} == {(spoken.item_id, spoken.response_id)}
    assert log.of(BotTranscript) == [
        BotTranscript("We open at nine.", spoken.item_id, spoken.response_id)
    ]
    assert log.events[-1] == ResponseDone(spoken.response_id, "completed")


async def test_caller_transcript_falls_back_on_deltas(realtime_fake, realtime_config, open_session):
    _, log = await open_session(realtime_config)
    item = await realtime_fake.caller_speech_started()
    await realtime_fake.caller_transcript(item, "book a table", final_text="")
    await log.wait_for(lambda: log.of(CallerTranscript))
    assert log.of(CallerTranscript) == [CallerTranscript("book a table", item)]


async def test_barge_in_cancels_and_truncate_payload(realtime_fake, realtime_config, open_session):
    session, log = await open_session(realtime_config)
    task = realtime_fake.start_response(GREETING_AUDIO * 20, "A long answer.", realtime=True)
    await log.wait_for(lambda: log.of(AudioOut))
    await realtime_fake.caller_speech_started()
    spoken = await task
    await log.wait_for(lambda: log.of(ResponseDone))
    assert spoken.status == "cancelled"
    assert log.of(ResponseDone) == [ResponseDone(spoken.response_id, "cancelled")]
    await session.truncate(spoken.item_id, 60)
    await realtime_fake.wait_for(lambda: realtime_fake.current.texts("conversation.item.truncate"))
    [truncate] = realtime_fake.current.texts("conversation.item.truncate")
    assert truncate == {
        "type": "conversation.item.truncate",
        "item_id": spoken.item_id,
        "content_index": 0,
        "audio_end_ms": 60,
    }
    assert realtime_fake.violations == []


async def test_function_call_then_tool_results(realtime_fake, realtime_config, open_session):
    session, log = await open_session(realtime_config)
    call = await realtime_fake.function_call("send_dtmf", {"digits": "12#"})
    await log.wait_for(lambda: log.of(ResponseDone))
    assert log.of(ToolCall) == [ToolCall(call.call_id, "send_dtmf", '{"digits": "12#"}')]
    assert isinstance(log.events[-1], ResponseDone)  # the tool call comes first, once

    await session.send_tool_result(call.call_id, '{"ok": true}', respond=False)
    conn = realtime_fake.current
    await realtime_fake.wait_for(lambda: conn.texts("conversation.item.create"))
    assert conn.texts("conversation.item.create")[-1]["item"] == {
        "type": "function_call_output",
        "call_id": call.call_id,
        "output": '{"ok": true}',
    }
    assert conn.texts("response.create") == []

    second = await realtime_fake.function_call("lookup", "{}")
    await session.send_tool_result(second.call_id, '{"found": 1}', respond=True)
    await realtime_fake.wait_for(lambda: conn.texts("response.create"))
    assert conn.texts("response.create") == [{"type": "response.create"}]
    assert realtime_fake.violations == []


async def test_vendor_errors_and_session_expiry(realtime_fake, realtime_config, open_session):
    session, log = await open_session(realtime_config)
    await realtime_fake.send_error("rate_limit_exceeded", "slow down")
    await log.wait_for(lambda: log.of(ConversationError))
    [error] = log.of(ConversationError)
    assert error.error.code == "rate_limit_exceeded" and "slow down" in str(error.error)
    await realtime_fake.expire_session()
    await log.wait_for(lambda: log.ended)
    assert log.of(SessionExpiring) == [SessionExpiring()]
    assert log.error is None  # the vendor's close after the expiry ends the events
    assert not session.connected


async def test_abrupt_close_raises_from_events(realtime_fake, realtime_config, open_session):
    session, log = await open_session(realtime_config)
    session.send_audio(b"\xff" * 160)
    await realtime_fake.wait_for(lambda: realtime_fake.current.audio)
    realtime_fake.drop()
    await log.wait_for(lambda: log.ended)
    assert isinstance(log.error, ProviderError)
    assert log.error.code == "stream_dropped"
    assert not session.connected
    session.send_audio(b"\xff" * 160)  # discarded, never raises
    await session.send_tool_result("call_x", "{}", respond=True)  # a no-op after a drop
    await session.close()


async def test_history_restored_without_greeting(realtime_fake, realtime_config, open_session):
    realtime_fake.greeting_audio = GREETING_AUDIO
    history = [
        ConversationTurn("bot", "Hello, how can I help?"),
        ConversationTurn("caller", "I want to book a table."),
        ConversationTurn("caller", "5", kind="dtmf"),
        ConversationTurn.for_tool(ToolUse("lookup", '{"day": "mon"}', '{"free": 2}', "call_7")),
        ConversationTurn("bot", ""),  # nothing heard: skipped
    ]
    config = _with(realtime_config, greeting="Welcome!")
    await open_session(config, history=history, greet=False)
    conn = realtime_fake.current
    await realtime_fake.wait_for(lambda: len(conn.extra["items"]) == 5)
    items = [e["item"] for e in conn.texts("conversation.item.create")]
    assert items == [
        {
            "type": "message",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "Hello, how can I help?"}],
        },
        {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": "I want to book a table."}],
        },
        {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": "[pressed keys 5]"}],
        },
        {
            "type": "function_call",
            "call_id": "call_7",
            "name": "lookup",
            "arguments": '{"day": "mon"}',
        },
        {"type": "function_call_output", "call_id": "call_7", "output": '{"free": 2}'},
    ]
    assert conn.texts("response.create") == []
    assert realtime_fake.violations == []


async def test_greeting_is_asked_for_and_plays(realtime_fake, realtime_config, open_session):
    realtime_fake.greeting_audio = GREETING_AUDIO
    config = _with(realtime_config, greeting="Thanks for calling Luigi's!")
    session, log = await open_session(config)
    await log.wait_for(lambda: log.of(ResponseDone))
    [create] = realtime_fake.current.texts("response.create")
    assert "Thanks for calling Luigi's!" in create["response"]["instructions"]
    assert realtime_fake.current.texts("conversation.item.create") == []  # no fake user turn
    assert b"".join(a.audio for a in log.of(AudioOut)) == GREETING_AUDIO

    await session.say("Say goodbye.")
    await realtime_fake.wait_for(lambda: len(realtime_fake.current.texts("response.create")) == 2)
    assert realtime_fake.current.texts("response.create")[1] == {
        "type": "response.create",
        "response": {"instructions": "Say goodbye."},
    }


async def test_send_audio_before_connect_and_after_close(realtime_config, open_session):
    session, _ = await open_session(realtime_config, connect=False)
    session.send_audio(b"\xff" * 160)  # discarded
    assert not session.connected
    await session.close()
    await session.close()
    session.send_audio(b"\xff" * 160)
    assert [e async for e in session.events()] == []


async def test_events_end_after_close(realtime_config, open_session):
    session, log = await open_session(realtime_config)
    await session.close()
    await log.wait_for(lambda: log.ended)
    assert log.error is None


def test_config_websocket_origin_and_query():
    config = OpenAIRealtimeConfig(api_key="k", base_url="https://api.example.test/v1/")
    assert config.websocket_origin == "wss://api.example.test/v1"
    assert OpenAIRealtimeConfig(api_key="k", base_url="http://127.0.0.1:9/v1").websocket_origin == (
        "ws://127.0.0.1:9/v1"
    )
    assert config.connect_query == {"temperature": "0.8"}
    assert json.dumps(config.session("x", ()))  # plain JSON


# --- the CLI ---------------------------------------------------------------------------------


@pytest.fixture
def runner(tmp_path, monkeypatch):
    from click.testing import CliRunner

    monkeypatch.chdir(tmp_path)
    for var in ("VOICEHOST_CONFIG", "VOICEHOST_LOAD_PLUGINS", "VOICEHOST_STRICT_PLUGINS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    return CliRunner()


def test_list_plugins_shows_the_conversation_provider(runner):
    from voicehost.cli import cli

    result = runner.invoke(cli, ["list-plugins", "--json"])
    assert result.exit_code == 0, result.output
    [entry] = [e for e in json.loads(result.stdout) if e["name"] == "voicehost-openai-realtime"]
    assert entry["providers"]["conversation"] == ["openai-realtime"]

    table = runner.invoke(cli, ["list-plugins"]).stdout.splitlines()
    header = table[0].split()
    [row] = [line.split() for line in table if line.startswith("voicehost-openai-realtime ")]
    assert row[header.index("CONVERSATION")] == "openai-realtime"


def test_config_check_with_and_without_a_key(runner, tmp_path):
    from voicehost.cli import cli

    toml = '[conversation]\nprovider = "openai-realtime"\n'
    (tmp_path / "plugins.toml").write_text(
        toml + '[conversation.openai-realtime]\napi_key = "sk-test"\neagerness = "low"\n'
    )
    result = runner.invoke(cli, ["config", "check"])
    assert result.exit_code == 0, result.output
    assert "openai-realtime (from voicehost-openai-realtime)" in result.stdout
    assert "sk-test" not in result.stdout

    (tmp_path / "plugins.toml").write_text(toml)
    result = runner.invoke(cli, ["config", "check"])
    assert result.exit_code == 1
    assert "OPENAI_API_KEY is not set" in result.stderr
    assert "[conversation.openai-realtime] api_key" in result.stderr

    (tmp_path / "plugins.toml").write_text(
        toml + '[conversation.openai-realtime]\napi_key = "k"\neagerness = "eager"\n'
    )
    result = runner.invoke(cli, ["config", "check"])
    assert result.exit_code == 1
    assert "eagerness" in result.stderr


def test_the_sdk_is_imported_only_when_a_client_is_built():
    """Importing the plugin, registering it and parsing its config leave ``openai`` out of
    ``sys.modules`` (``list-plugins`` and ``config check`` stay fast); the preload needs it."""
    import subprocess
    import sys

    script = (
        "import json, sys\n"
        "import voicehost_openai_realtime as plugin\n"
        "providers = []\n"
        "plugin.register_conversation_providers(providers.append)\n"
        "(provider,) = providers\n"
        "config = plugin.OpenAIRealtimeConfig(api_key='k-123')\n"
        "seen = {'registered': 'openai' in sys.modules}\n"
        "seen['configured'] = provider.is_configured(config)\n"
        "provider.preload(config)\n"
        "seen['preloaded'] = 'openai' in sys.modules\n"
        "print(json.dumps(seen))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen == {"registered": False, "configured": True, "preloaded": True}
