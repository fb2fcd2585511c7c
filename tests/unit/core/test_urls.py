"""core.urls: secrets masked inside every URL shape, the rest of the URL kept; host names checked."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.urls import host_problem, mask_text, mask_url, secret_param

SECRET = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_", min_size=6,
                 max_size=30).map(lambda s: f"S3cr{s}")
SCHEMES = st.sampled_from(["https", "redis", "rediss", "kafka", "ods+https", "csv+https", "webhook+https", "amqp"])
HOSTS = st.sampled_from(["host", "portal.example", "127.0.0.1", "[::1]", "h-1.example.org"])
PORTS = st.sampled_from(["", ":6379", ":9092"])
PATHS = st.sampled_from(["", "/", "/0", "/api/x.csv", "/explore/dataset/d"])
NAMES = st.sampled_from(["apikey", "api_key", "token", "access_token", "key", "secret", "signature", "sig",
                         "X-Amz-Signature", "password", "client_secret", "auth"])


@pytest.mark.parametrize(("url", "masked"), [
    ("redis://:hunter2@host:6379/0", "redis://:***@host:6379/0"),
    ("kafka://user:pw@broker:9092", "kafka://user:***@broker:9092"),
    ("https://TOKEN@host/x", "https://***@host/x"),
    ("ods+https://p.example/d?apikey=k&where=a%3D1#key=a+b", "ods+https://p.example/d?apikey=***&where=a%3D1#key=a+b"),
    ("https://h/x?b=2&X-Amz-Signature=abc&empty=", "https://h/x?b=2&X-Amz-Signature=***&empty="),
    ("sqlite:///vigie.db", "sqlite:///vigie.db"),
    ("memory://", "memory://"),
    ("state.db", "state.db"),
    ("C:\\data\\x.csv", "C:\\data\\x.csv"),
    ("http://a[b/x?token=t", "http://***"),
])
def test_mask_url(url: str, masked: str) -> None:
    assert mask_url(url) == masked


@given(st.tuples(SCHEMES, st.sampled_from(["", "user"]), HOSTS, PORTS, PATHS), NAMES, SECRET, SECRET)
def test_no_secret_survives_and_the_rest_is_kept(shape: tuple[str, str, str, str, str], name: str, password: str,
                                                 token: str) -> None:
    scheme, user, host, port, path = shape
    url = f"{scheme}://{user}:{password}@{host}{port}{path}?where=x&{name}={token}"
    masked = mask_url(url)
    assert password not in masked
    assert token not in masked
    assert masked == f"{scheme}://{user}:***@{host}{port}{path}?where=x&{name}=***"
    assert mask_text(f"GET {url}, failed") == f"GET {masked}, failed"


@given(SCHEMES, HOSTS, PORTS, PATHS)
def test_urls_without_secrets_are_unchanged(scheme: str, host: str, port: str, path: str) -> None:
    url = f"{scheme}://{host}{port}{path}?where=a&limit=5"
    assert mask_url(url) == url


@pytest.mark.parametrize(("name", "secret"), [("apikey", True), ("access_token", True), ("where", False),
                                              ("select", False), ("lang", False), ("keyword", False)])
def test_secret_param(name: str, secret: bool) -> None:
    assert secret_param(name) is secret


@pytest.mark.parametrize(("host", "problem"), [
    ("portal.example", None), ("127.0.0.1", None), ("::1", None), ("a_b.example", None),
    ("bad host", "contains a space"), ("-bad.example", "not a valid"), (None, "no host name"), ("a/b", "not a valid"),
])
def test_host_problem(host: str | None, problem: str | None) -> None:
    found = host_problem(host)
    assert found is None if problem is None else problem in (found or "")
