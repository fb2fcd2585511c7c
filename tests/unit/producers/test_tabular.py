"""Reading CSV bytes: encodings, delimiters, headers, and what is not a CSV table."""

from __future__ import annotations

import csv
import io

import pytest

from producers.errors import UnreadableContent
from producers.tabular import ROW_ERROR, ROW_EXTRA, decode, parse_csv, sniff_delimiter
from tests.unit.producers.support import BAD_ROWS, LEGACY

HEADER = ["Numero_inspection", "APP_Libelle_etablissement", "geores", "Libelle_commune"]
ROWS = [["19-048897-1", "RELAIS DES BASTIDES", "44.488403, 0.600709", "Saint-Pastour"],
        ["18-089145-1", "CAFÉ « L'ÉTÉ »", "48.873043, 2.344009", "Paris 9e  Arrondissement"]]


def _csv(delimiter: str, rows: list[list[str]] = ROWS, header: list[str] = HEADER) -> str:
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\r\n")
    writer.writerows([header, *rows])
    return out.getvalue()


@pytest.mark.parametrize("delimiter", [";", ",", "\t"])
@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "cp1252", "latin-1", "utf-16"])
def test_reads_every_delimiter_and_encoding(delimiter: str, encoding: str) -> None:
    table = parse_csv(_csv(delimiter).encode(encoding))
    assert table.delimiter == delimiter
    assert table.header == [h.lower() for h in HEADER]
    assert [list(r.values()) for r in table.rows] == ROWS
    assert table.problem is None


def test_bom_does_not_leak_into_the_first_column_name() -> None:
    table = parse_csv(b"\xef\xbb\xbf" + _csv(";").encode())
    assert table.header[0] == "numero_inspection"
    assert table.encoding == "utf-8-sig"


def test_latin1_is_recognised_not_replaced() -> None:
    text, encoding = decode("Très satisfaisant; à corriger".encode("cp1252"))
    assert (text, encoding) == ("Très satisfaisant; à corriger", "cp1252")


def test_a_few_broken_bytes_in_utf8_stay_utf8_and_show_as_replacement() -> None:
    data = "Très satisfaisant;Vésinet;Épinal;".encode() + b"caf\xe9"
    text, encoding = decode(data)
    assert encoding == "utf-8"
    assert text.endswith("caf\ufffd")


def test_sniffer_is_overruled_by_the_header_count() -> None:
    # every data line has one comma inside "lat, lon"; the header has none
    text = _csv(";").replace('"', "")
    assert sniff_delimiter(text) == ";"


def test_the_real_2018_export() -> None:
    table = parse_csv(LEGACY.read_bytes())
    assert (len(table.rows), table.delimiter, table.bad_rows) == (15_463, ";", 0)
    assert table.header[:3] == ["filtre", "app_libelle_activite_etablissement", "app_libelle_etablissement"]


def test_rows_with_the_wrong_column_count_are_kept_and_marked() -> None:
    table = parse_csv((BAD_ROWS / "wrong-column-count.csv").read_bytes())
    marked = [r for r in table.rows if ROW_ERROR in r]
    assert [r[ROW_ERROR] for r in marked] == ["wrong column count: expected 20, got 19",
                                              "wrong column count: expected 20, got 21"]
    assert marked[1][ROW_EXTRA] == ["extra"]
    assert len(table.rows) == 8
    assert table.problem is None


def test_most_rows_broken_is_a_problem_for_the_whole_file() -> None:
    table = parse_csv((BAD_ROWS / "mostly-broken.csv").read_bytes())
    assert table.problem == "inconsistent column counts: 5 of 6 rows do not have the 20 header columns"


def test_blank_lines_are_skipped() -> None:
    table = parse_csv((_csv(";") + "\r\n\r\n").encode())
    assert len(table.rows) == 2
    assert table.bad_rows == 0


@pytest.mark.parametrize(("name", "reason"), [
    ("empty.csv", "empty file"),
    ("html-page.csv", "an HTML page, not CSV"),
    ("binary.csv", "binary content"),
    ("no-header.csv", "no header line"),
])
def test_files_that_are_not_tables(name: str, reason: str) -> None:
    with pytest.raises(UnreadableContent, match=reason):
        parse_csv((BAD_ROWS / name).read_bytes())


def test_duplicate_header_names() -> None:
    with pytest.raises(UnreadableContent, match="duplicate header names: siret"):
        parse_csv(b"siret;SIRET;nom\n1;2;3\n")
