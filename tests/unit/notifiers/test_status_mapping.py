"""HTTP statuses and Retry-After headers → DeliveryError, as tables (the HTTP round trips are in
tests/integration/test_channels_http.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from notifiers.base import parse_retry_after
from notifiers.webhook import status_error

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(("status", "retriable"), [
    (200, None), (201, None), (202, None), (204, None), (299, None),
    (301, False), (304, False), (400, False), (401, False), (403, False), (404, False), (405, False),
    (409, False), (413, False), (415, False), (422, False),
    (408, True), (425, True), (429, True), (500, True), (502, True), (503, True), (504, True), (599, True),
    (410, False),
])
def test_status_to_retriable(status: int, retriable: bool | None) -> None:
    error = status_error(status, None, "webhook+https://partner.example/h")
    assert (None if error is None else error.retriable) is retriable


def test_gone_says_the_endpoint_is_gone() -> None:
    error = status_error(410, 60.0, "webhook+https://partner.example/h")
    assert error is not None
    assert str(error) == "webhook endpoint is gone (410 Gone): webhook+https://partner.example/h"
    assert (error.retriable, error.retry_after) == (False, None)


def test_retry_after_travels_with_retriable_statuses_only() -> None:
    busy, refused = status_error(503, 12.0, "x"), status_error(400, 12.0, "x")
    assert busy is not None
    assert busy.retry_after == 12.0
    assert refused is not None
    assert refused.retry_after is None


@pytest.mark.parametrize(("header", "seconds"), [
    (None, None), ("", None), ("  ", None), ("soon", None), ("nan", None), ("inf", None),
    ("120", 120.0), (" 7 ", 7.0), ("1.5", 1.5), ("0", 0.0), ("-3", 0.0),
    ("Mon, 02 Mar 2026 09:01:30 GMT", 90.0),
    ("Mon, 02 Mar 2026 08:00:00 GMT", 0.0),  # in the past: now
    ("Mon, 02 Mar 2026 09:01:30", 90.0),  # no zone: UTC
])
def test_parse_retry_after(header: str | None, seconds: float | None) -> None:
    assert parse_retry_after(header, NOW) == seconds
