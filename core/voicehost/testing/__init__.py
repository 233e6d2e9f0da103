"""Test helpers for voicehost and its plugins: a Twilio simulator (:mod:`.twilio`)."""

from voicehost.testing.twilio import SimulatedCall, TwilioSimulator, WebhookReply

__all__ = ["SimulatedCall", "TwilioSimulator", "WebhookReply"]
