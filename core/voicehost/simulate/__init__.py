"""``voicehost simulate``: be the caller. :mod:`.caller` plays audio into one call through the
Twilio simulator (:mod:`voicehost.testing.twilio`) and times each turn; :mod:`.timeline` lays
both sides out on the call's timeline (the two-track ``--out`` WAV); :mod:`.voice` speaks
``--say`` texts with the offline TTS; :mod:`.command` is the CLI around them."""
