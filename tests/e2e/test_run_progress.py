"""`vigie run --once` draws a download bar on a terminal (stderr a pseudo-terminal) and none in a pipe."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from runtime.demo.portal import FakePortal
from runtime.demo.snapshots import DATASET_ID, build_snapshots


def read_until_closed(fd: int) -> bytes:
    """Everything written to the pseudo-terminal, until its last writer is gone (Linux: EIO)."""
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


async def run_once(tmp_path: Path, portal: FakePortal, *, terminal: bool) -> tuple[int, str]:
    env = {**os.environ, "VIGIE_STATE": f"sqlite:///{tmp_path / 'vigie.db'}",
           "VIGIE_SOURCES": portal.url_for(DATASET_ID), "VIGIE_LOG_LEVEL": "WARNING", "TERM": "xterm",
           "COLUMNS": "120"}
    env.pop("NO_COLOR", None)
    if not terminal:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "runtime.cli", "run", "--once", "--json", env=env, cwd=tmp_path,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
        _, stderr = await process.communicate()
        return process.returncode or 0, stderr.decode()
    master, slave = os.openpty()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "runtime.cli", "run", "--once", "--json", env=env, cwd=tmp_path,
        stdout=asyncio.subprocess.DEVNULL, stderr=slave)
    os.close(slave)
    try:
        written = await asyncio.to_thread(read_until_closed, master)
    finally:
        os.close(master)
    return await process.wait(), written.decode(errors="replace")


async def test_a_download_bar_on_a_terminal_only(tmp_path: Path) -> None:
    story = build_snapshots()
    async with FakePortal() as portal:
        portal.publish(DATASET_ID, story.first.rows, modified=story.first.modified)
        (tmp_path / "tty").mkdir()
        code, screen = await run_once(tmp_path / "tty", portal, terminal=True)
        assert code == 0, screen
        assert "downloading alimconfiance" in screen
        code, piped = await run_once(tmp_path, portal, terminal=False)
    assert code == 0, piped
    assert "downloading" not in piped
    assert "rows" in piped  # the poll line is still printed
