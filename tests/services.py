"""Real services for the tests: where they are, whether they answer, and Kafka's own tooling.

Addresses come from the environment, as written by ``deploy/local/services.sh up`` into ``.local/services.env``:

    KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9092
    REDIS_URL=redis://127.0.0.1:6379/0

A missing or silent service skips the test on a developer machine and fails it in CI (``CI=true``), where a
skipped integration suite would otherwise pass unnoticed.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NoReturn

import pytest
import redis
from aiokafka import AIOKafkaClient

REPO_ROOT = Path(__file__).resolve().parent.parent
KAFKA_SH = REPO_ROOT / "deploy" / "local" / "kafka.sh"
START_HINT = "start them with `deploy/local/services.sh up && . .local/services.env`"
CHECK_TIMEOUT_S = 10.0
NO_PONG = "PING did not return PONG"
NO_BROKER = "the cluster metadata lists no broker"


class ServiceCheckError(ConnectionError):
    """A service accepted the connection but did not answer as it should."""


class ConsoleConsumerError(RuntimeError):
    """Kafka's console consumer exited with an error."""

    def __init__(self, command: list[str], returncode: int, stderr: str) -> None:
        super().__init__(f"{' '.join(command)} exited {returncode}:\n{stderr}")


def unavailable(message: str) -> NoReturn:
    """Skip the test locally; fail it in CI."""
    if os.environ.get("CI") == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def kafka_bootstrap_servers() -> str:
    """The reachable Kafka bootstrap servers from KAFKA_BOOTSTRAP_SERVERS, or skip/fail."""
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "").strip()
    if not bootstrap:
        unavailable(f"KAFKA_BOOTSTRAP_SERVERS is not set: no Kafka for integration tests; {START_HINT}")
    problem = _failure(check_kafka, bootstrap)
    if problem:
        unavailable(f"Kafka at KAFKA_BOOTSTRAP_SERVERS={bootstrap} does not answer ({problem}); {START_HINT}")
    return bootstrap


def redis_url() -> str:
    """The reachable Redis URL from REDIS_URL, or skip/fail."""
    url = os.environ.get("REDIS_URL", "").strip()
    if not url:
        unavailable(f"REDIS_URL is not set: no Redis for integration tests; {START_HINT}")
    problem = _failure(check_redis, url)
    if problem:
        unavailable(f"Redis at REDIS_URL={url} does not answer PING ({problem}); {START_HINT}")
    return url


def _failure(check: Callable[[str], None], address: str) -> str:
    """Run a service check; "" when it passes, else the error (reported outside the except block, unchained)."""
    try:
        check(address)
    except Exception as exc:  # any failure means "service unusable", reported with its cause
        return repr(exc)
    return ""


def check_redis(url: str) -> None:
    """PING Redis; raise if it does not answer."""
    client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=CHECK_TIMEOUT_S)
    try:
        if client.ping() is not True:
            raise ServiceCheckError(NO_PONG)
    finally:
        client.close()


def check_kafka(bootstrap: str) -> None:
    """Connect to the first bootstrap server, then ask the cluster for its metadata; raise if either fails."""
    host, port = split_host_port(bootstrap.split(",", maxsplit=1)[0])
    with socket.create_connection((host, port), timeout=2):
        pass
    # A fresh event loop in a worker thread: fixtures may be set up while another loop is running.
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, _kafka_metadata(bootstrap)).result(timeout=CHECK_TIMEOUT_S + 5)


async def _kafka_metadata(bootstrap: str) -> None:
    client = AIOKafkaClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_S):
            await client.bootstrap()
            metadata = await client.fetch_all_metadata()
        if not metadata.brokers():
            raise ServiceCheckError(NO_BROKER)
    finally:
        await client.close()


def split_host_port(address: str) -> tuple[str, int]:
    """``"127.0.0.1:9092"`` or ``"[::1]:9092"`` -> host and port."""
    host, _, port = address.strip().rpartition(":")
    return host.strip("[]") or "127.0.0.1", int(port)


def console_consume(
    topic: str,
    max_messages: int,
    *,
    bootstrap: str,
    idle_timeout_ms: int = 20_000,
    extra_args: tuple[str, ...] = (),
) -> list[str]:
    """Read ``topic`` from the beginning with Kafka's own ``ConsoleConsumer`` (via deploy/local/kafka.sh).

    Returns the printed lines (one record value per line unless ``extra_args`` ask for more). Stops after
    ``max_messages`` or ``idle_timeout_ms`` without a record, so the list may be shorter. The first call may
    download the Kafka jars from Maven Central.
    """
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "KAFKA_CONSOLE_TIMEOUT_MS": str(idle_timeout_ms)}
    command = [str(KAFKA_SH), "console-consumer", topic, str(max_messages), *extra_args]
    result = subprocess.run(
        command, env=env, capture_output=True, encoding="utf-8", timeout=300, check=False
    )
    if result.returncode != 0:
        raise ConsoleConsumerError(command, result.returncode, result.stderr)
    return [line for line in result.stdout.splitlines() if line.strip()]
