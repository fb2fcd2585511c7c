"""CsvSource over files and a real local HTTP server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from core.ports import RawSnapshot
from producers.csv_http import CsvSource
from producers.http import RetryPolicy
from tests.unit.producers.support import BAD_ROWS, LEGACY, OFFICIAL

Files = dict[str, tuple[bytes, str]]


class Recorder:
    def __init__(self) -> None:
        self.sleeps: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)


@pytest.fixture
async def server() -> AsyncIterator[tuple[str, Files, list[int]]]:
    """A file server on 127.0.0.1: `files[name] = (body, content type)`; `failures` = statuses to answer first."""
    files: Files = {}
    failures: list[int] = []

    async def handle(request: web.Request) -> web.Response:
        if failures:
            return web.Response(status=failures.pop(0), text="busy")
        body, content_type = files[request.match_info["name"]]
        return web.Response(body=body, headers={"Content-Type": content_type})

    app = web.Application()
    app.router.add_get("/{name}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"csv+http://127.0.0.1:{site.port}", files, failures
    await runner.cleanup()


async def fetch(url: str, last_version: str | None = None, **options: Any) -> tuple[CsvSource, RawSnapshot]:
    source = CsvSource(url, **options)
    try:
        return source, await source.fetch(last_version)
    finally:
        await source.aclose()


@pytest.mark.parametrize("as_url", [str, lambda p: p.as_uri()])
async def test_reads_a_local_file_and_recognises_it_unchanged(as_url: Callable[[Path], str]) -> None:
    source = CsvSource(as_url(LEGACY))
    first = await source.fetch(None)
    again = await source.fetch(first.version)
    assert (len(first.rows), first.complete, first.unchanged) == (15_463, True, False)
    assert first.version.startswith("blake2b:")
    assert first.meta["delimiter"] == ";"
    assert (again.unchanged, again.rows, again.version) == (True, [], first.version)
    await source.aclose()


async def test_a_changed_file_has_a_new_version(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_bytes(OFFICIAL.read_bytes())
    source = CsvSource(str(path))
    first = await source.fetch(None)
    path.write_bytes(OFFICIAL.read_bytes().replace(b"Satisfaisant;2", b"A am\xc3\xa9liorer;3", 1))
    second = await source.fetch(first.version)
    assert not second.unchanged
    assert second.version != first.version
    await source.aclose()


async def test_comma_and_latin1(tmp_path: Path) -> None:
    text = "numero_inspection,libelle_commune,geores\r\n1,Vénissieux,\"45.7, 4.8\"\r\n2,Épinal,\r\n"
    path = tmp_path / "latin.csv"
    path.write_bytes(text.encode("latin-1"))
    _, raw = await fetch(str(path))
    assert raw.rows == [{"numero_inspection": "1", "libelle_commune": "Vénissieux", "geores": "45.7, 4.8"},
                        {"numero_inspection": "2", "libelle_commune": "Épinal", "geores": ""}]
    assert raw.meta["encoding"] == "cp1252"


async def test_a_missing_file_is_a_problem_not_an_exception(tmp_path: Path) -> None:
    _, raw = await fetch(str(tmp_path / "absent.csv"))
    assert raw.complete is False
    assert (raw.problem or "").startswith("cannot read ")


@pytest.mark.parametrize(("name", "problem"), [
    ("empty.csv", "empty file"),
    ("html-page.csv", "an HTML page, not CSV (error page or login wall?)"),
    ("binary.csv", "binary content, not CSV text"),
    ("no-header.csv", "no header line"),
    ("mostly-broken.csv", "inconsistent column counts: 5 of 6 rows do not have the 20 header columns"),
])
async def test_broken_files_are_incomplete_with_a_reason(name: str, problem: str) -> None:
    _, raw = await fetch(str(BAD_ROWS / name))
    assert raw.complete is False
    assert (raw.problem or "").startswith(problem)


async def test_over_http(server: tuple[str, Files, list[int]]) -> None:
    base, files, _ = server
    files["official.csv"] = (OFFICIAL.read_bytes(), "text/csv")
    _, raw = await fetch(f"{base}/official.csv")
    assert (len(raw.rows), raw.complete) == (131, True)


async def test_html_answer_over_http(server: tuple[str, Files, list[int]]) -> None:
    base, files, _ = server
    files["page.csv"] = (b"<p>maintenance</p>", "text/html")
    _, raw = await fetch(f"{base}/page.csv")
    assert (raw.problem or "").endswith("answered an HTML page, not CSV")


async def test_retries_server_errors_then_reads(server: tuple[str, Files, list[int]]) -> None:
    base, files, failures = server
    files["official.csv"] = (OFFICIAL.read_bytes(), "text/csv")
    failures.extend([503, 502])
    recorder = Recorder()
    _, raw = await fetch(f"{base}/official.csv", retry=RetryPolicy(sleep=recorder.sleep, backoff=1.0))
    assert raw.complete
    assert len(recorder.sleeps) == 2
    assert 0.5 <= recorder.sleeps[0] <= 1.0 <= recorder.sleeps[1] <= 2.0


async def test_gives_up_after_the_last_attempt(server: tuple[str, Files, list[int]]) -> None:
    base, _, failures = server
    failures.extend([500] * 3)
    recorder = Recorder()
    _, raw = await fetch(f"{base}/x.csv", retry=RetryPolicy(sleep=recorder.sleep, attempts=3))
    assert (raw.problem or "").startswith("HTTP 500 from http://127.0.0.1:")
    assert len(recorder.sleeps) == 2


@pytest.mark.parametrize("url", ["csv+http://example.org/data.csv", "csv+http://10.0.0.1/data.csv"])
def test_plain_http_only_on_loopback(url: str) -> None:
    with pytest.raises(ValueError, match="allowed only for loopback hosts"):
        CsvSource(url)


def test_unknown_scheme() -> None:
    with pytest.raises(ValueError, match="not a CSV source URL"):
        CsvSource("ftp://example.org/data.csv")
