"""Speech-to-speech mode: every call's audio goes to a conversation provider (a realtime
speech-to-speech model) and its audio comes back, instead of the STT → responder → TTS
pipeline. :class:`SpeechToSpeechCallHandler` is the call handler; :class:`SpeechToSpeechCall`
one call's conversation; :class:`CallTools` the tools the model is offered."""

from voicehost.speech_to_speech.call import SpeechToSpeechCall
from voicehost.speech_to_speech.handler import SpeechToSpeechCallHandler
from voicehost.speech_to_speech.tools import CallTools, compose_instructions

__all__ = ["CallTools", "SpeechToSpeechCall", "SpeechToSpeechCallHandler", "compose_instructions"]
