"""The application: what ``voicehost serve`` assembles from plugins, config, the conversation
handler, records and routes (:mod:`.assembly`), and the ``serve`` command (:mod:`.serve`)."""
