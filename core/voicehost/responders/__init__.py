"""The built-in responders (``scripted``, ``webhook``; see :mod:`voicehost.responders.builtin`).
The responder contract itself is :mod:`voicehost.contracts.responders`."""
