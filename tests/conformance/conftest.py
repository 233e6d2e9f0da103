"""The conformance kit (:mod:`voicehost.testing.conformance`) run against every built-in
provider, the test fakes and the example plugin: one module per plugin.

``tests/`` goes on ``sys.path`` for the vendor fakes (``fakes``; pytest runs with
``--import-mode=importlib``, which does not add it). The example plugin is not installed in
the workspace venv: it is imported here from its directory, which is then taken off
``sys.path`` again (the module stays in ``sys.modules`` for ``test_example_beep.py``).
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

# The kit's assertions get pytest's detailed failure reports (it is imported after this).
pytest.register_assert_rewrite("voicehost.testing.conformance")

TESTS = Path(__file__).resolve().parents[1]
EXAMPLE = TESTS.parent / "examples" / "voicehost-example-tts"

if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

sys.path.insert(0, str(EXAMPLE))
try:
    importlib.import_module("voicehost_example_tts")
finally:
    sys.path.remove(str(EXAMPLE))
