"""`vigie subscribe --where` / `--where-file`: stored as typed, listed back, a bad condition named in one line."""

from __future__ import annotations

import json
from pathlib import Path

from tests.e2e.test_cli_errors import one_line, vigie


def test_subscribe_with_a_where_condition_and_list_it(tmp_path: Path) -> None:
    made = vigie(tmp_path, "subscribe", "--to", "console://", "--everywhere", "--activity", "Restaurant",
                 "--where", "rating >= 3 and not name contains burger")
    assert made.returncode == 0, made.stderr
    listed = vigie(tmp_path, "subscriptions", "list", "--json")
    [sub] = json.loads(listed.stdout)
    assert sub["activities"] == ["Restaurant"]  # the listing's documented flat keys (docs/operations.md)
    assert sub["where"] == {"and": [{"field": "rating", "gte": 3}, {"not": {"field": "name", "contains": "burger"}}]}


def test_where_file_and_errors(tmp_path: Path) -> None:
    (tmp_path / "where.json").write_text(json.dumps({"or": [{"field": "kind", "eq": "downgrade"}, {"field": "x"}]}))
    bad = vigie(tmp_path, "subscribe", "--to", "console://", "--everywhere", "--where-file", "where.json")
    assert bad.returncode == 2
    assert "or[1]: expected one of eq, in" in bad.stderr
    typo = vigie(tmp_path, "subscribe", "--to", "console://", "--everywhere", "--where", "rating >> 3")
    assert typo.returncode == 2
    assert "where: at column 9: expected a value" in typo.stderr
    both = vigie(tmp_path, "subscribe", "--to", "console://", "--everywhere", "--where", "a exists",
                 "--where-file", "where.json")
    assert "give --where or --where-file, not both" in one_line(both)
