"""Bytes of a CSV file → lowercase header and rows of strings. Shared by CsvSource and the ODS CSV export.

Rows with the wrong number of columns are kept, not dropped: they carry `ROW_ERROR` (a one-line
reason) and, when they had too many values, the surplus under `ROW_EXTRA`. Adapters quarantine them,
so one bad line is reported with its content while every other row flows on.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from typing import Any

from producers.errors import UnreadableContent

ROW_ERROR = "__error__"
ROW_EXTRA = "__extra__"
DELIMITERS = (";", ",", "\t")
_HTML_STARTS = ("<!doctype", "<html", "<?xml", "<head", "<body", "<!--")
_SAMPLE = 16_384


@dataclass(frozen=True, slots=True)
class Table:
    header: list[str]
    rows: list[dict[str, Any]]
    encoding: str
    delimiter: str
    bad_rows: int

    @property
    def problem(self) -> str | None:
        """A reason to distrust the whole file: most rows do not have the header's column count."""
        if self.rows and self.bad_rows * 2 > len(self.rows):
            return (f"inconsistent column counts: {self.bad_rows} of {len(self.rows)} rows do not have "
                    f"the {len(self.header)} header columns")
        return None


def decode(data: bytes) -> tuple[str, str]:
    """Text and encoding name: UTF-8 (with or without BOM), UTF-16 with BOM, else cp1252 / latin-1.

    A UTF-8 file with a few broken bytes stays UTF-8: those rows carry U+FFFD and get quarantined,
    instead of the whole file being misread as cp1252.
    """
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8", errors="replace"), "utf-8-sig"
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16", errors="replace"), "utf-16"
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    text = data.decode("utf-8", errors="replace")
    broken = text.count("\ufffd")
    non_ascii = len(text) - len(text.encode("ascii", errors="ignore"))
    if non_ascii - broken > broken:
        return text, "utf-8"
    try:
        return data.decode("cp1252"), "cp1252"
    except UnicodeDecodeError:
        return data.decode("latin-1"), "latin-1"


def check_text(text: str) -> None:
    """Raise UnreadableContent for what is plainly not CSV: empty, an HTML page, binary data."""
    head = text[:_SAMPLE].lstrip()
    if not head.strip():
        raise UnreadableContent("empty file")
    if head[:20].lower().startswith(_HTML_STARTS):
        raise UnreadableContent("an HTML page, not CSV (error page or login wall?)")
    controls = sum(1 for c in head if c < " " and c not in "\t\r\n")
    if "\x00" in head or controls * 20 > len(head):
        raise UnreadableContent("binary content, not CSV text")


def _fields_in_header(line: str, delimiter: str) -> int:
    return len(next(csv.reader([line], delimiter=delimiter), []))


def sniff_delimiter(text: str) -> str:
    """`;`, `,` or tab: csv.Sniffer's guess when the header agrees, else the one splitting the header most."""
    sample = text[:_SAMPLE]
    header = sample.lstrip("\r\n").splitlines()[0] if sample.strip() else ""
    counts = {d: _fields_in_header(header, d) for d in DELIMITERS}
    best = max(DELIMITERS, key=lambda d: counts[d])
    try:
        guessed = csv.Sniffer().sniff(sample[: sample.rfind("\n") + 1] or sample, delimiters="".join(DELIMITERS))
    except csv.Error:
        return best
    sniffed = str(guessed.delimiter)
    return sniffed if counts.get(sniffed, 0) == counts[best] else best


def _header(values: list[str]) -> list[str]:
    names = [v.strip().lower() for v in values]
    if any(not n or not any(c.isalpha() for c in n) for n in names):
        raise UnreadableContent(f"no header line: first line reads {','.join(values)[:80]!r}")
    if len(set(names)) != len(names):
        duplicated = sorted({n for n in names if names.count(n) > 1})
        raise UnreadableContent(f"duplicate header names: {', '.join(duplicated)}")
    return names


def _rows(reader: Any, header: list[str]) -> tuple[list[dict[str, Any]], int]:
    width, rows, bad = len(header), [], 0
    for values in reader:
        if len(values) == width:
            rows.append(dict(zip(header, values, strict=True)))
        elif values and any(v.strip() for v in values):
            row: dict[str, Any] = dict(zip(header, values, strict=False))
            row[ROW_ERROR] = f"wrong column count: expected {width}, got {len(values)}"
            if len(values) > width:
                row[ROW_EXTRA] = values[width:]
            rows.append(row)
            bad += 1
    return rows, bad


def parse_csv(data: bytes) -> Table:
    """Read a whole CSV file. Raises UnreadableContent when it is not a CSV table at all."""
    text, encoding = decode(data)
    check_text(text)
    delimiter = sniff_delimiter(text)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        first = next((values for values in reader if values), None)
        if first is None:
            raise UnreadableContent("empty file")
        header = _header(first)
        rows, bad = _rows(reader, header)
    except csv.Error as exc:
        raise UnreadableContent(f"not readable as CSV: {exc}") from exc
    return Table(header, rows, encoding, delimiter, bad)
