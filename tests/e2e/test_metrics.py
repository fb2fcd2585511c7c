"""Prometheus metrics scraped over HTTP from running processes: `vigie run` (polls, rows, changes by kind,
deliveries by channel and outcome, the publication-to-delivery lag, /healthz) and the distributed producer role."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests import services
from tests.polling import until

EXCERPT = Path(__file__).parent.parent.parent / "runtime" / "demo_data" / "official-layout-2023-2024-excerpt.csv"
SOURCE = f"file://{EXCERPT}#dataset=alimconfiance"
ROWS = 131  # in the excerpt


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics, by (name, sorted labels); empty while the server is not up yet."""
    try:
        async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}/metrics") as answer:
            text = await answer.text()
    except aiohttp.ClientConnectionError:
        return {}
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


@pytest.fixture
async def process(tmp_path: Path) -> AsyncIterator[list[asyncio.subprocess.Process]]:
    """Processes a test starts; each one still running is stopped (SIGTERM, by PID) at the end."""
    started: list[asyncio.subprocess.Process] = []
    yield started
    for proc in started:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            await asyncio.wait_for(proc.wait(), 30)


async def start(started: list[asyncio.subprocess.Process], env: dict[str, str], cwd: Path,
                *args: str) -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "runtime.cli", *args, env=env, cwd=cwd,
                                                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    started.append(proc)
    return proc


async def test_vigie_run_serves_its_metrics(tmp_path: Path, process: list[asyncio.subprocess.Process]) -> None:
    port = free_port()
    env = {**os.environ, "VIGIE_STATE": f"sqlite:///{tmp_path / 'vigie.db'}", "VIGIE_SOURCES": SOURCE,
           "VIGIE_BASELINE_ALERTS": "true", "VIGIE_METRICS_PORT": str(port)}
    subscribe = await asyncio.create_subprocess_exec(sys.executable, "-m", "runtime.cli", "subscribe", "--to",
                                                     "console://", "--everywhere", env=env, cwd=tmp_path,
                                                     stdout=asyncio.subprocess.DEVNULL)
    assert await subscribe.wait() == 0
    await start(process, env, tmp_path, "run")
    delivered = ("vigie_deliveries_total", (("channel", "console"), ("outcome", "delivered")))
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}

    async def all_delivered() -> bool:
        samples.update(await scrape(port))
        return samples.get(delivered) == ROWS

    await until(all_delivered, "every baseline alert delivered and counted", deadline_s=60)
    assert samples[("vigie_polls_total", (("outcome", "ok"), ("source", SOURCE)))] == 1
    assert samples[("vigie_rows_total", (("dataset", "alimconfiance"),))] == ROWS
    assert samples[("vigie_changes_total", (("op", "created"),))] == ROWS
    assert samples[("vigie_change_kinds_total", (("kind", "new_inspection"),))] == ROWS
    assert samples[("vigie_delivery_lag_seconds_count", (("channel", "console"),))] == ROWS
    async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}/healthz") as answer:
        assert answer.status == 200


@pytest.mark.kafka
@pytest.mark.redis
async def test_the_producer_role_serves_its_metrics(tmp_path: Path,
                                                    process: list[asyncio.subprocess.Process]) -> None:
    port, tag = free_port(), uuid.uuid4().hex[:8]
    env = {**os.environ, "VIGIE_BUS": f"kafka://{services.kafka_bootstrap_servers()}",
           "VIGIE_STORE": services.redis_url(), "VIGIE_TOPIC_PREFIX": f"metrics-{tag}.", "VIGIE_APP_ID": tag,
           "VIGIE_NAMESPACE": f"metrics-{tag}", "VIGIE_DATA_DIR": str(tmp_path / "data"), "VIGIE_SOURCES": SOURCE,
           "VIGIE_METRICS_PORT": str(port), "VIGIE_PARTITIONS": "1"}
    producer = await start(process, env, tmp_path, "producer")
    polled = ("vigie_polls_total", (("outcome", "ok"), ("source", SOURCE)))
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}

    async def published() -> bool:
        assert producer.returncode is None, (await producer.stderr.read()).decode() if producer.stderr else ""
        samples.update(await scrape(port))
        return samples.get(polled) == 1

    await until(published, "the producer's first poll counted", deadline_s=90)
    assert samples[("vigie_rows_total", (("dataset", "alimconfiance"),))] == ROWS
    assert ("process_resident_memory_bytes", ()) in samples


async def test_the_stream_worker_and_the_notifier_serve_their_consumer_lag(
        tmp_path: Path, process: list[asyncio.subprocess.Process]) -> None:
    tag = uuid.uuid4().hex[:8]
    env = {**os.environ, "VIGIE_BUS": f"kafka://{services.kafka_bootstrap_servers()}",
           "VIGIE_STORE": services.redis_url(), "VIGIE_TOPIC_PREFIX": f"lag-{tag}.", "VIGIE_APP_ID": tag,
           "VIGIE_NAMESPACE": f"lag-{tag}", "VIGIE_DATA_DIR": str(tmp_path / "data"), "VIGIE_SOURCES": SOURCE,
           "VIGIE_PARTITIONS": "1"}
    worker_port, notifier_port = free_port(), free_port()
    roles = [await start(process, {**env, "VIGIE_METRICS_PORT": str(worker_port)}, tmp_path, "streams", "worker"),
             await start(process, {**env, "VIGIE_METRICS_PORT": str(notifier_port)}, tmp_path, "notifier",
                         "--channel", "console"),
             await start(process, env, tmp_path, "producer")]
    lags: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}

    async def lag_of(port: int, name: str) -> bool:
        for role in roles:
            assert role.returncode is None, (await role.stderr.read()).decode() if role.stderr else ""
        lags[name] = {labels: value for (sample, labels), value in (await scrape(port)).items()
                      if sample == "vigie_kafka_consumer_lag"}
        return bool(lags[name])

    records = (("group", tag), ("partition", "0"), ("topic", f"lag-{tag}.records.alimconfiance"))

    async def served() -> bool:  # the diff agent's records partition, nothing left behind once it read its end
        return await lag_of(worker_port, "streams") and lags["streams"].get(records) == 0

    await until(served, "the stream worker's lag on the records topic", deadline_s=120)
    await until(lambda: lag_of(notifier_port, "notifier"), "the notifier's lag series", deadline_s=60)
    assert {dict(labels)["group"] for labels in lags["notifier"]} <= {f"{tag}-notifier-console",
                                                                      f"{tag}-notifier-console-retry"}
    assert all(value >= 0 for value in lags["notifier"].values())
