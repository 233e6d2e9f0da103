"""Tearing down a connection whose peer stopped reading.

A WebSocket closed because its peer stopped reading (outbound backlog, close 1013) cannot be
closed gracefully: asyncio's ``transport.close()`` waits to flush the backlog first, and the
kernel keeps an orphaned connection probing the peer's closed window even after the file
descriptor is gone. Either way the connection lives as long as the peer keeps it open.

:class:`HeldConnection` gives such a peer a bounded grace instead. It duplicates the
socket's descriptor before the WebSocket is closed, so the TCP connection stays open while
aiohttp and asyncio let go of their transport (its unsent bytes discarded with ``abort``);
when the grace is over the duplicate is closed: normally when the peer has acknowledged
every byte (it read the close frame), else with a TCP reset (``SO_LINGER`` 0), which drops
the backlog and frees the connection at once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import struct

try:  # POSIX: how many sent bytes the peer has not acknowledged (Linux SIOCOUTQ)
    import fcntl
    import termios
except ImportError:  # pragma: no cover - not POSIX: every held connection is reset
    fcntl = None  # type: ignore[assignment]
    termios = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

__all__ = ["HeldConnection", "reset", "transport_closed"]

_LINGER_RESET = struct.pack("ii", 1, 0)


def transport_closed(transport: asyncio.BaseTransport) -> bool:
    """True once the transport's socket is really gone (``abort``, or a ``close`` that
    finished flushing); a ``close()`` still flushing to a peer that does not read is not."""
    sock = transport.get_extra_info("socket")
    return sock is None or sock.fileno() == -1


def reset(transport: asyncio.BaseTransport) -> None:
    """Abort ``transport`` with a TCP reset (``SO_LINGER`` 0): unsent bytes are dropped
    and the connection is gone at once."""
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.fileno() != -1:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
        except OSError as exc:  # not a TCP socket
            log.debug("SO_LINGER: %s", exc)
    transport.abort()  # type: ignore[attr-defined]


def unsent_bytes(sock: socket.socket) -> int | None:
    """Bytes sent on ``sock`` that the peer has not acknowledged yet (``TIOCOUTQ``), or
    None where the platform cannot tell."""
    if fcntl is None or termios is None:  # pragma: no cover - not POSIX
        return None
    try:
        raw = fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, struct.pack("i", 0))
    except OSError:
        return None
    return int(struct.unpack("i", raw)[0])


class HeldConnection:
    """A duplicate descriptor of a transport's TCP socket (see the module's docstring)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    @classmethod
    def hold(cls, transport: asyncio.BaseTransport | None) -> HeldConnection | None:
        """Duplicate ``transport``'s socket, or None when it has none (or it is closed)."""
        sock = transport.get_extra_info("socket") if transport is not None else None
        if sock is None or sock.fileno() == -1:
            return None
        try:
            fd = os.dup(sock.fileno())
        except OSError as exc:  # out of descriptors: the caller resets the transport
            log.debug("cannot hold the connection: %s", exc)
            return None
        try:
            return cls(socket.socket(fileno=fd))
        except OSError as exc:
            os.close(fd)
            log.debug("cannot hold the connection: %s", exc)
            return None

    def release(self, *, force_reset: bool = False) -> bool:
        """Close the duplicate: normally when the peer acknowledged everything sent, else
        (or with ``force_reset``) with a TCP reset. Returns True when it was reset."""
        unsent = None if force_reset else unsent_bytes(self.sock)
        was_reset = unsent != 0
        if was_reset:
            try:
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
            except OSError as exc:
                log.debug("SO_LINGER: %s", exc)
        self.sock.close()
        return was_reset
