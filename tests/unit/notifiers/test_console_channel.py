"""console:// prints the plain-text alert in the subscriber's language."""

from __future__ import annotations

import io

import pytest

from core import render
from core.errors import DeliveryError
from notifiers import Channels
from notifiers.console import ConsoleChannel
from tests.unit.notifiers.support import delivery


@pytest.mark.parametrize("lang", ["fr", "en"])
async def test_prints_text_in_the_subscription_language(lang: str) -> None:
    out = io.StringIO()
    channels = Channels(console_stream=out)
    d = delivery("console://", lang=lang)
    await channels.send(d)
    await channels.aclose()
    assert out.getvalue() == render.text(d.change, lang) + "\n\n"
    assert "Boulangerie du Port" in out.getvalue()


async def test_stderr_destination_uses_the_error_stream() -> None:
    out, err = io.StringIO(), io.StringIO()
    channel = ConsoleChannel(out, err_stream=err)
    await channel.send(delivery("console://stderr", lang="en"))
    assert out.getvalue() == ""
    assert err.getvalue().startswith("New sanitary inspection: Boulangerie du Port\n")


async def test_default_stream_is_standard_output(capsys: pytest.CaptureFixture[str]) -> None:
    await ConsoleChannel().send(delivery("console://"))
    assert capsys.readouterr().out.startswith("Nouveau contrôle sanitaire : Boulangerie du Port\n")


async def test_a_malformed_destination_is_not_retriable() -> None:
    with pytest.raises(DeliveryError, match="invalid destination: console destination must be") as raised:
        await ConsoleChannel(io.StringIO()).send(delivery("console://printer"))
    assert raised.value.retriable is False


async def test_unknown_channel_is_not_retriable() -> None:
    channels = Channels(console_stream=io.StringIO())
    with pytest.raises(DeliveryError, match=r"no channel for sms:// destinations") as raised:
        await channels.send(delivery("sms://0612345678"))
    assert raised.value.retriable is False
    await channels.aclose()
