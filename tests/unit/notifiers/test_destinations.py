"""Destination URLs: validation messages, normalisation and masking, as tables."""

from __future__ import annotations

import base64
import re

import pytest
from standardwebhooks import Webhook

from core.errors import SubscriptionError
from notifiers import mask, new_secret, parse_destination, validate_destination
from notifiers.base import scrub
from notifiers.slack import SlackTarget
from notifiers.webhook import WebhookTarget

TOKEN = "xoxb-1234-5678-AbCdEf"


@pytest.mark.parametrize(("url", "normalised"), [
    ("console://", "console://"),
    ("console://stdout", "console://"),
    ("CONSOLE://stderr/", "console://stderr"),
    ("webhook+https://Partner.Example/hooks/vigie?tenant=7", "webhook+https://partner.example/hooks/vigie?tenant=7"),
    ("webhook+https://partner.example", "webhook+https://partner.example/"),
    ("webhook+https://partner.example:8443/h#frag", "webhook+https://partner.example:8443/h"),
    ("webhook+https://user:pw@partner.example/h", "webhook+https://user:pw@partner.example/h"),
    ("webhook+http://127.0.0.1:8080/hooks/a", "webhook+http://127.0.0.1:8080/hooks/a"),
    ("webhook+http://127.8.9.10/x", "webhook+http://127.8.9.10/x"),
    ("webhook+http://localhost:9000/x", "webhook+http://localhost:9000/x"),
    ("webhook+http://[::1]:9000/x", "webhook+http://[::1]:9000/x"),
    ("  slack://C0123ABCD  ", "slack://C0123ABCD"),
    ("slack://%23general", "slack://%23general"),
    ("slack://#general", "slack://%23general"),
    ("slack://general", "slack://%23general"),
    ("slack://vigie_alerts-69/", "slack://%23vigie_alerts-69"),
    (f"slack://{TOKEN}@%23general", f"slack://{TOKEN}@%23general"),
    (f"slack://{TOKEN}@C0123ABCD", f"slack://{TOKEN}@C0123ABCD"),
    ("slack+https://hooks.slack.com/services/T0/B0/abcDEF123", "slack+https://hooks.slack.com/services/T0/B0/abcDEF123"),
    ("slack+http://127.0.0.1:8000/services/T0/B0/x/", "slack+http://127.0.0.1:8000/services/T0/B0/x"),
])
def test_valid_destinations_are_normalised(url: str, normalised: str) -> None:
    assert validate_destination(url) == normalised
    assert validate_destination(normalised) == normalised


KNOWN = "expected one of console://, webhook+https://, webhook+http://, slack://, slack+https://, slack+http://, tg://"


@pytest.mark.parametrize(("url", "message"), [
    ("", "destination must be a URL such as slack://C0123ABCD, got ''"),
    ("general", "destination must be a URL such as slack://C0123ABCD, got 'general'"),
    ("mailto://someone@example.org", f"unknown destination scheme mailto://: {KNOWN}"),
    ("https://partner.example/h", f"unknown destination scheme https://: {KNOWN}"),
    ("webhook://partner.example/h", f"unknown destination scheme webhook://: {KNOWN}"),
    ("webhook+ftp://partner.example/h", f"unknown destination scheme webhook+ftp://: {KNOWN}"),
    ("sms://0612345678", f"unknown destination scheme sms://: {KNOWN}"),
    ("console://printer", "console destination must be console:// or console://stderr, got 'console://printer'"),
    ("webhook+https:///path", "webhook URL has no host: expected webhook+https://host/path"),
    ("webhook+https://partner.example:99999/h", "webhook URL has an invalid port: Port out of range 0-65535"),
    ("webhook+http://partner.example/h",
     "webhook+http:// is only allowed for loopback hosts (127.0.0.0/8, localhost, ::1), not partner.example: "
     "use webhook+https://"),
    ("webhook+http://10.0.0.7/h",
     "webhook+http:// is only allowed for loopback hosts (127.0.0.0/8, localhost, ::1), not 10.0.0.7: "
     "use webhook+https://"),
    ("webhook+http://128.0.0.1/h",
     "webhook+http:// is only allowed for loopback hosts (127.0.0.0/8, localhost, ::1), not 128.0.0.1: "
     "use webhook+https://"),
    ("slack://", "slack destination needs a channel: slack://[xoxb-TOKEN@]CHANNEL"),
    (f"slack://{TOKEN}@", "slack destination needs a channel: slack://[xoxb-TOKEN@]CHANNEL"),
    ("slack://General", "slack channel must be an id like C0123ABCD or a lower-case name like #general, got 'General'"),
    ("slack://%23gen eral",
     "slack channel must be an id like C0123ABCD or a lower-case name like #general, got '#gen eral'"),
    ("slack://C0123/extra",
     "slack channel must be an id like C0123ABCD or a lower-case name like #general, got 'C0123/extra'"),
    ("slack://xoxp-user-token@C0123ABCD",
     "slack token must be a bot token (xoxb-…) before the @ in slack://TOKEN@CHANNEL"),
    ("slack://@C0123ABCD", "slack token must be a bot token (xoxb-…) before the @ in slack://TOKEN@CHANNEL"),
])
def test_invalid_destinations_say_why(url: str, message: str) -> None:
    with pytest.raises(SubscriptionError) as raised:
        validate_destination(url)
    assert str(raised.value) == message


def test_a_rejected_token_is_not_echoed() -> None:
    with pytest.raises(SubscriptionError) as raised:
        validate_destination("slack://xoxp-very-secret@C0123ABCD")
    assert "very-secret" not in str(raised.value)


@pytest.mark.parametrize(("url", "masked"), [
    ("console://stderr", "console://stderr"),
    ("slack://C0123ABCD", "slack://C0123ABCD"),
    (f"slack://{TOKEN}@%23general", "slack://xoxb-***@%23general"),
    ("webhook+https://partner.example/hooks/vigie", "webhook+https://partner.example/hooks/vigie"),
    ("webhook+https://bob:hunter2@partner.example/h", "webhook+https://bob:***@partner.example/h"),
    ("webhook+https://partner.example/h?token=s3cr3t&tenant=7", "webhook+https://partner.example/h?token=***&tenant=***"),
    ("webhook+https://hooks.example/services/T000/B000/XXXXXXXXXXXXXXXX1234",
     "webhook+https://hooks.example/services/T000/B000/XXXX***"),
    ("slack://xoxp-very-secret@C0123ABCD", "slack://***"),
    ("nonsense", "***"),
])
def test_mask_hides_secrets(url: str, masked: str) -> None:
    assert mask(url) == masked


def test_targets_print_themselves_with_and_without_privacy() -> None:
    slack = SlackTarget.parse(f"slack://{TOKEN}@C0123ABCD")
    assert (slack.url(), slack.url(privacy=False)) == ("slack://xoxb-***@C0123ABCD", f"slack://{TOKEN}@C0123ABCD")
    assert TOKEN not in repr(slack)
    hook = WebhookTarget.parse("webhook+https://bob:pw@partner.example/h?key=abc")
    assert hook.url() == "webhook+https://bob:***@partner.example/h?key=***"
    assert hook.url(privacy=False) == "webhook+https://bob:pw@partner.example/h?key=abc"
    assert hook.endpoint == "https://bob:pw@partner.example/h?key=abc"
    assert parse_destination("slack://%23general") == SlackTarget("#general")


def test_new_secret_is_a_usable_standard_webhooks_secret() -> None:
    first, second = new_secret(), new_secret()
    assert first != second
    assert re.fullmatch(r"whsec_[A-Za-z0-9+/]+=*", first)
    assert len(base64.b64decode(first.removeprefix("whsec_"))) == 32
    Webhook(first)


@pytest.mark.parametrize(("message", "scrubbed"), [
    ("InvalidURL: https://bob:pw@h.example/x?token=abc", "InvalidURL: https://bob:***@h.example/x?token=***"),
    ("400, message='Bad', url='http://127.0.0.1:9/h?key=k'", "400, message='Bad', url='http://127.0.0.1:9/h?key=***'"),
    ("Cannot connect to host 127.0.0.1:9 ssl:default", "Cannot connect to host 127.0.0.1:9 ssl:default"),
])
def test_scrub_masks_urls_quoted_in_library_errors(message: str, scrubbed: str) -> None:
    assert scrub(message) == scrubbed
