"""bench/pipeline.py --quick runs every phase on both runtimes through a real broker and Redis, and prints its table,
the republication ratio and the CPU per event by process (no time asserted)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "pipeline.py"


def test_quick_run_prints_every_phase(kafka_bootstrap: str, redis_url: str) -> None:
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "REDIS_URL": redis_url}
    result = subprocess.run([sys.executable, str(BENCH), "--quick"], capture_output=True, text=True, timeout=600,
                            check=False, env=env)
    assert result.returncode == 0, result.stderr[-4000:]
    out = result.stdout
    for row in ("embedded (SQLite), burst", "embedded, republication (1 in 100 changed)",
                "kafka (faust + aiokafka), burst", "kafka, paced at 1000/s", "kafka, republication (1 in 100 changed)"):
        assert any(line.startswith(row) for line in out.splitlines()), out
    assert "republication, kafka time / embedded time:" in out
    assert "CPU ms per event, kafka (faust + aiokafka), burst:" in out
    sent = re.search(r"republication: (\d+) of (\d+) records sent", result.stderr)
    assert sent is not None, result.stderr[-4000:]
    assert int(sent[1]) == int(sent[2]) // 100  # only what changed crossed Kafka
