"""Waking daemons at once after an admin action (design 6.6).

Each daemon listens on a UDP port and registers ``wake_host:wake_port`` in its
``worker_instance`` row; the web and the CLI read those rows and send one datagram to
each live daemon. That works between hosts that share only the database. A datagram
carries nothing but a hint ("look at the database now"), so a lost or forged one costs at
most an extra query: the safety-net poll catches whatever a notification missed.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterable

WAKE_MESSAGE = b"jobsys-wake"


class WakeListener:
    """A non-blocking UDP socket the daemon's selector watches."""

    def __init__(self, host: str = "0.0.0.0", port: int = 0) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            self._sock.bind((host, port))
        except OSError:
            self._sock.close()
            raise
        self._sock.setblocking(False)

    @property
    def port(self) -> int:
        port: int = self._sock.getsockname()[1]
        return port

    def fileno(self) -> int:
        return self._sock.fileno()

    def drain(self) -> int:
        """Read every pending datagram; return how many were wake-ups."""
        count = 0
        while True:
            try:
                data = self._sock.recv(64)
            except (BlockingIOError, InterruptedError):
                return count
            except OSError:
                return count
            if data == WAKE_MESSAGE:
                count += 1

    def close(self) -> None:
        self._sock.close()


def send_wake(addresses: Iterable[tuple[str, int]]) -> int:
    """Send a wake-up to each ``(host, port)``; return how many were sent.

    Errors (an unknown host, a closed port) are ignored: the poll is the safety net.
    """
    sent = 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for host, port in addresses:
            with contextlib.suppress(OSError):
                sock.sendto(WAKE_MESSAGE, (host, port))
                sent += 1
    return sent


def default_wake_host() -> str:
    """The address other hosts can reach this one at (``JOBSYS_WAKE_HOST`` overrides)."""
    name = socket.gethostname()
    try:
        return socket.gethostbyname(name)
    except OSError:
        return "127.0.0.1"
