"""`console://` (standard output) and `console://stderr`: the plain-text alert, for demos and debugging."""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from typing import IO, Literal

from core import render
from core.errors import SubscriptionError
from core.model import Delivery
from core.ports import Channel
from notifiers.base import Options, Plugin, split_scheme, target_of

log = logging.getLogger(__name__)

Stream = Literal["stdout", "stderr"]
_STREAMS: dict[str, Stream] = {"": "stdout", "stdout": "stdout", "stderr": "stderr"}


@dataclass(frozen=True, slots=True)
class ConsoleTarget:
    stream: Stream = "stdout"

    @classmethod
    def parse(cls, url: str) -> ConsoleTarget:
        scheme, rest = split_scheme(url)
        if scheme != "console":
            raise SubscriptionError(f"not a console destination: {scheme}://")
        stream = _STREAMS.get(rest.strip("/").lower())
        if stream is None:
            raise SubscriptionError(f"console destination must be console:// or console://stderr, got {url!r}")
        return cls(stream)

    def url(self, privacy: bool = True) -> str:
        return "console://" if self.stream == "stdout" else "console://stderr"


class ConsoleChannel:
    """Writes `render.text` in the subscriber's language to `stream` (standard output by default)."""

    scheme = "console"

    def __init__(self, stream: IO[str] | None = None, *, err_stream: IO[str] | None = None) -> None:
        self._stream = stream
        self._err_stream = err_stream

    async def send(self, delivery: Delivery) -> None:
        target = target_of(delivery, ConsoleTarget.parse)
        out = (self._err_stream or sys.stderr) if target.stream == "stderr" else (self._stream or sys.stdout)
        out.write(render.text(delivery.change, delivery.subscription.lang) + "\n\n")
        out.flush()
        log.debug("printed %s", delivery.key, extra={
            "change_id": delivery.change.id, "subscription_id": delivery.subscription.id, "channel": self.scheme})

    async def aclose(self) -> None:
        return None


def build(options: Options) -> Channel:
    return ConsoleChannel(options.console_stream)


PLUGIN = Plugin("console", ("console",), ConsoleTarget.parse, build)
