"""Phone numbers and call targets: E.164 checks and caller allow/block patterns.

E.164 (ITU-T E.164, as Twilio writes it): ``+`` then 1 to 15 digits, the first not 0
(``+15550001111``). A call *target* (``To`` of a call, a transfer's ``<Dial>``) is an E.164
number, a ``sip:``/``sips:`` URI or a Twilio ``client:`` identity. A caller *pattern* is an
E.164 number, or an E.164 prefix ending in ``*`` (``+1555*``), or ``*`` alone (everyone).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = [
    "check_call_target",
    "check_e164",
    "is_call_target",
    "is_caller_pattern",
    "is_e164",
    "matches_caller",
]

_E164 = re.compile(r"\+[1-9][0-9]{0,14}")
_PREFIX = re.compile(r"\+[0-9]{0,15}\*|\*")
_SIP = re.compile(r"sips?:[^\s<>\"]+@[^\s<>\"]+", re.IGNORECASE)
_CLIENT = re.compile(r"client:[A-Za-z0-9_.\-]{1,121}")


def is_e164(number: object) -> bool:
    """True for an E.164 number such as ``+15550001111`` (no spaces, dashes or brackets)."""
    return isinstance(number, str) and _E164.fullmatch(number) is not None


def is_call_target(target: object) -> bool:
    """True for what a call may be placed or transferred to: an E.164 number, a ``sip:`` /
    ``sips:`` URI with a user and host, or a ``client:`` identity."""
    if not isinstance(target, str) or len(target) > 512:
        return False
    return bool(is_e164(target) or _SIP.fullmatch(target) or _CLIENT.fullmatch(target))


def is_caller_pattern(pattern: object) -> bool:
    """True for an E.164 number, an E.164 prefix ending in ``*`` or ``*`` alone."""
    return isinstance(pattern, str) and (is_e164(pattern) or _PREFIX.fullmatch(pattern) is not None)


def matches_caller(number: str, patterns: Iterable[str]) -> bool:
    """True when ``number`` (a webhook's ``From``) equals one of ``patterns`` or starts with
    the prefix of one ending in ``*``."""
    for pattern in patterns:
        if pattern.endswith("*"):
            if number.startswith(pattern[:-1]):
                return True
        elif number == pattern:
            return True
    return False


def check_e164(number: str, what: str = "number") -> str:
    """``number`` when it is E.164.

    Raises:
        ValueError: it is not, with a message naming ``what`` and the expected form.
    """
    if not is_e164(number):
        raise ValueError(f"{what} must be an E.164 number such as +15550001111, not {number!r}")
    return number


def check_call_target(target: str, what: str = "target") -> str:
    """``target`` when it is an E.164 number, a ``sip:`` URI or a ``client:`` identity.

    Raises:
        ValueError: it is none of these.
    """
    if not is_call_target(target):
        raise ValueError(
            f"{what} must be an E.164 number (+15550001111), a sip: URI or a client: identity, "
            f"not {target!r}"
        )
    return target
