"""What every conformance class checks: the provider's parsed config (see
:mod:`voicehost.testing.conformance`)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

import pytest

from voicehost.config_model import ProviderConfig
from voicehost.testing.conformance.support import (
    config_from_table,
    refusing_endpoint,
    stalled_endpoint,
    undocumented_keys,
)

CALL_SID = "CA" + "c0" * 16
STREAM_SID = "MZ" + "c0" * 16


class _ProviderChecks:
    """What every provider kind is checked for; the fixtures every kind shares."""

    #: The provider's ``[<kind>.<id>]`` table as a dict, parsed by the default ``config``
    #: fixture with the host's parser.
    config_table: ClassVar[Mapping[str, Any]] = {}
    #: The provider kind's contract class (set by each conformance class).
    provider_type: ClassVar[type] = object

    @pytest.fixture
    def provider(self) -> Any:
        """The provider under test. Override it: ``return MyProvider()``."""
        pytest.fail(f"{type(self).__name__}: override the `provider` fixture")

    @pytest.fixture
    def config(self, provider: Any) -> ProviderConfig:
        """The parsed config the tests use: :attr:`config_table` through
        :func:`config_from_table`. Override it to build the object yourself, or to point it
        at a fake vendor started by another fixture."""
        return config_from_table(provider, self.config_table)

    @pytest.fixture
    def refusing_url(self) -> Iterator[str]:
        """``http://127.0.0.1:<port>`` where nothing listens (connections refused at once)."""
        with refusing_endpoint() as url:
            yield url

    @pytest.fixture
    def stalled_url(self) -> Iterator[str]:
        """``http://127.0.0.1:<port>`` that accepts connections and never answers."""
        with stalled_endpoint() as url:
            yield url

    def test_provider_and_config_are_typed(self, provider: Any, config: ProviderConfig) -> None:
        """The provider is of its kind, has an id, and ``config`` is its ``config_class``,
        accepted by ``is_configured``."""
        assert isinstance(provider, self.provider_type), (
            f"{type(provider).__name__} is not a {self.provider_type.__name__}"
        )
        assert isinstance(provider.id, str) and provider.id, "the provider needs a non-empty id"
        assert isinstance(provider.config_class, type) and issubclass(
            provider.config_class, ProviderConfig
        ), "config_class must be a voicehost.ProviderConfig subclass"
        assert isinstance(config, provider.config_class), (
            f"config is a {type(config).__name__}, not the provider's "
            f"config_class {provider.config_class.__name__}"
        )
        assert provider.is_configured(config) is True, (
            "is_configured(config) is not True: the host would refuse to start with it"
        )

    def test_every_config_key_is_documented(self, provider: Any) -> None:
        """Every key of ``config_class`` (nested tables included) has a ``description``:
        ``voicehost config schema`` prints it."""
        missing = undocumented_keys(provider.config_class)
        assert not missing, (
            f"{provider.config_class.__name__}: keys without a description: {missing} "
            '(declare them with Field(default, description="one line, with units"))'
        )


# --- speech to text ------------------------------------------------------------------------
