"""runtime/progress.py: one bar per download while it runs, drawn on a terminal only."""

from __future__ import annotations

import io

from rich.console import Console

from runtime.progress import DownloadBars


def console(*, terminal: bool) -> tuple[Console, io.StringIO]:
    screen = io.StringIO()
    return Console(file=screen, force_terminal=terminal, width=100), screen


def test_a_bar_per_download_removed_at_its_end() -> None:
    term, screen = console(terminal=True)
    with DownloadBars(term) as bars:
        report = bars.reporter("alimconfiance")
        report(65_536, 1_000_000)
        bars.reporter("other")(10, None)
        assert bars.drawing == ["alimconfiance", "other"]
        report(1_000_000, 1_000_000)
        report(1_000_000, 1_000_000)  # the source's own end, after the last chunk already filled the bar
        assert bars.drawing == ["other"]
        bars.reporter("other")(20, 20)
        assert bars.drawing == []
    assert "downloading alimconfiance" in screen.getvalue()


def test_a_body_done_in_one_chunk_draws_nothing() -> None:
    term, screen = console(terminal=True)
    with DownloadBars(term) as bars:
        bars.reporter("tiny")(100, 100)
        assert bars.drawing == []
    assert "tiny" not in screen.getvalue()


def test_nothing_is_drawn_off_a_terminal() -> None:
    plain, screen = console(terminal=False)
    with DownloadBars(plain) as bars:
        assert not bars.enabled
        bars.reporter("alimconfiance")(10, 1000)
        assert bars.drawing == []
    assert screen.getvalue() == ""
