"""Many open ``GET /api/admin/events`` streams from one process: plain sockets that send
the request, wait for the stream's first bytes and then stay open without reading (the
cheapest client there is; what a crowd of idle browser tabs looks like to the web).
Used by the event-stream tests and by ``bench/web_events.py``."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator
from urllib.parse import urlsplit


def open_stream(url: str, token: str, timeout: float = 30) -> tuple[socket.socket, int]:
    """Open one stream; returns the socket and the HTTP status. A 200 stream is read up
    to ``: connected``; any other answer is read whole and the socket closed."""
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80), timeout)
    request = (
        f"GET /api/admin/events HTTP/1.1\r\nHost: {parts.netloc}\r\n"
        f"Authorization: Bearer {token}\r\nAccept: text/event-stream\r\n\r\n"
    )
    sock.sendall(request.encode())
    data = b""
    deadline = time.monotonic() + timeout
    while b"\r\n\r\n" not in data or (
        b" 200 " in data.split(b"\r\n", 1)[0] and b": connected" not in data
    ):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
        if time.monotonic() > deadline:
            raise TimeoutError("the event stream did not answer")
    status = int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/") else 0
    if status != 200:
        sock.close()
    return sock, status


@contextlib.contextmanager
def open_streams(url: str, tokens: list[str], count: int) -> Iterator[list[socket.socket]]:
    """``count`` streams, spread over ``tokens`` in turn; all closed on exit."""
    socks: list[socket.socket] = []
    try:
        for i in range(count):
            sock, status = open_stream(url, tokens[i % len(tokens)])
            assert status == 200, f"stream {i + 1} of {count} answered {status}"
            socks.append(sock)
        yield socks
    finally:
        for sock in socks:
            with contextlib.suppress(OSError):
                sock.close()


def rss_mb(pid: int) -> float:
    """Resident memory of a process, in MB (``VmRSS``)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")
