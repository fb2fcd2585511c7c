"""The benchmark's webhook receiver: a partner endpoint that costs little CPU, so the machine measures Vigie.

It stands for partner services that run elsewhere; on one shared 2-core machine the demo receiver (aiohttp's
server) took about a fifth of the CPU an alert costs. This one speaks just enough HTTP/1.1 for a client that
POSTs with Content-Length over kept-alive connections (aiohttp's, which Vigie's webhook channel uses), and still
does what a careful partner does with every request: verify the Standard Webhooks signature with the endpoint's
secret (401 otherwise) and dedupe on `webhook-id`. It stamps each first arrival (time.time) by the event's
record key.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"
REJECTED = b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 17\r\nContent-Type: text/plain\r\n\r\ninvalid signature"
NOT_FOUND = b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\nContent-Type: text/plain\r\n\r\nnot found"
BAD = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 11\r\nConnection: close\r\n\r\nbad request"
PREFIX = "/hooks/"


class LeanReceiver:
    def __init__(self) -> None:
        self.arrivals: dict[str, float] = {}
        self.accepted = 0
        self.rejected = 0
        self.duplicates = 0
        self.base = 0
        self._signers: dict[str, Webhook] = {}
        self._seen: set[tuple[str, str]] = set()
        self._server: asyncio.Server | None = None
        self._changed = asyncio.Event()
        self.base_url = ""

    async def start(self, host: str = "127.0.0.1") -> str:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Connection(self), host, 0)
        port = self._server.sockets[0].getsockname()[1]
        self.base_url = f"http://{host}:{port}"
        return self.base_url

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    def add_endpoint(self, name: str, secret: str) -> str:
        self._signers[name] = Webhook(secret)
        return f"{self.base_url}{PREFIX}{name}"

    def reset(self) -> None:
        self.arrivals.clear()
        self.base = self.accepted

    async def wait_count(self, n: int, timeout: float) -> None:  # noqa: ASYNC109 - a deadline is the point
        try:
            async with asyncio.timeout(timeout):
                while self.accepted - self.base < n:
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            raise TimeoutError(f"{self.accepted - self.base} of {n} events within {timeout}s") from None

    def handle(self, path: str, headers: dict[str, str], body: bytes) -> bytes:
        signer = self._signers.get(path.removeprefix(PREFIX)) if path.startswith(PREFIX) else None
        if signer is None:
            return NOT_FOUND
        try:
            event: Any = signer.verify(body, headers)
        except (WebhookVerificationError, ValueError):
            self.rejected += 1
            return REJECTED
        seen = (path, headers["webhook-id"])
        if seen in self._seen:
            self.duplicates += 1
            return OK
        self._seen.add(seen)
        self.arrivals[event["data"]["key"]] = time.time()
        self.accepted += 1
        self._changed.set()
        return OK


class _Connection(asyncio.Protocol):
    """One kept-alive client connection: requests parsed in order as their bytes come."""

    def __init__(self, receiver: LeanReceiver) -> None:
        self._receiver = receiver
        self._buffer = bytearray()
        self._transport: asyncio.WriteTransport = asyncio.WriteTransport()  # replaced on connection_made

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if not isinstance(transport, asyncio.WriteTransport):
            raise TypeError(f"expected a stream transport, got {type(transport).__name__}")
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while (response := self._next()) is not None:
            self._transport.write(response)

    def _next(self) -> bytes | None:
        """The response to the next complete request in the buffer (consumed), or None until one is whole."""
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            return None
        head = bytes(self._buffer[:end]).decode("latin-1").split("\r\n")
        parts = head[0].split(" ")
        headers = {}
        for line in head[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        try:
            length = int(headers.get("content-length", "0"))
        except ValueError:
            length = -1
        if len(parts) != 3 or parts[0] != "POST" or length < 0:
            self._buffer.clear()
            self._transport.write(BAD)
            self._transport.close()
            return None
        if len(self._buffer) < end + 4 + length:
            return None
        body = bytes(self._buffer[end + 4:end + 4 + length])
        del self._buffer[:end + 4 + length]
        return self._receiver.handle(parts[1], headers, body)
