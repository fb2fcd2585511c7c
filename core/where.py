"""The text form of a filter predicate, as typed after `vigie subscribe --where` (or sent as a string by the API).

    rating >= 3 and activity in ("Restaurant", "Traiteur") and not name contains "burger"
    kind = downgrade or (postcode = 75011 and date_inspection between "2025-01-01" and "2025-12-31")
    siret exists and not agrement exists

Grammar (keywords in any case; `and` binds tighter than `or`; a bare word is text):

    expr   := term ("or" term)*          term := factor ("and" factor)*
    factor := "not" factor | "(" expr ")" | FIELD test
    test   := ("=" | "!=" | "<" | "<=" | ">" | ">=") value | "in" "(" value ("," value)* ")"
            | "contains" value | "exists" | "between" value "and" value

`parse` raises SubscriptionError with the column of the problem; `text` writes a predicate back in this form.
Semantics are core/filters.py's.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from core.errors import SubscriptionError
from core.filters import And, Contains, Eq, Exists, Filter, In, Not, Or, Predicate, Range, Scalar, checked

_TOKEN = re.compile(r"""\s*(?:(?P<string>"(?:[^"\\]|\\.)*"|'[^']*')|(?P<number>-?\d+(?:\.\d+)?(?![\w.\-]))|"""
                    r"""(?P<op><=|>=|!=|=|<|>|\(|\)|,)|(?P<word>[\w.\-]+))""")
_COMPARISONS = {"<": "lt", "<=": "lte", ">": "gt", ">=": "gte"}
MAX_LENGTH = 2000


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # string, number, op, word, end
    text: str
    column: int
    value: Scalar = ""


def _tokens(source: str) -> list[_Token]:
    tokens, position = [], 0
    while source[position:].strip():
        found = _TOKEN.match(source, position)
        if found is None or found.lastgroup is None:
            column = position + len(source[position:]) - len(source[position:].lstrip()) + 1
            raise SubscriptionError(f"where: at column {column}: unexpected {source[column - 1]!r}")
        kind, text = found.lastgroup, found.group(found.lastgroup)
        tokens.append(_Token(kind, text, found.start(kind) + 1, _literal(kind, text)))
        position = found.end()
    tokens.append(_Token("end", "", len(source) + 1))
    return tokens


def _literal(kind: str, text: str) -> Scalar:
    if kind == "number":
        return int(text) if re.fullmatch(r"-?\d+", text) else float(text)
    if kind == "string":
        if text.startswith("'"):
            return text[1:-1]
        value: str = json.loads(text)
        return value
    return text


class _Parser:
    def __init__(self, source: str) -> None:
        self.tokens = _tokens(source)
        self.at = 0

    @property
    def peek(self) -> _Token:
        return self.tokens[self.at]

    def fail(self, expected: str) -> SubscriptionError:
        token = self.peek
        found = "the end" if token.kind == "end" else repr(token.text)
        return SubscriptionError(f"where: at column {token.column}: expected {expected}, found {found}")

    def keyword(self, *words: str) -> str | None:
        token = self.peek
        if token.kind == "word" and token.text.lower() in words:
            self.at += 1
            return token.text.lower()
        return None

    def symbol(self, *symbols: str) -> str | None:
        token = self.peek
        if token.kind == "op" and token.text in symbols:
            self.at += 1
            return token.text
        return None

    def expr(self) -> Predicate:
        parts = [self.term()]
        while self.keyword("or"):
            parts.append(self.term())
        return parts[0] if len(parts) == 1 else Or(tuple(parts))

    def term(self) -> Predicate:
        parts = [self.factor()]
        while self.keyword("and"):
            parts.append(self.factor())
        return parts[0] if len(parts) == 1 else And(tuple(parts))

    def factor(self) -> Predicate:
        if self.keyword("not"):
            return Not(self.factor())
        if self.symbol("("):
            inner = self.expr()
            if not self.symbol(")"):
                raise self.fail("')'")
            return inner
        token = self.peek
        if token.kind != "word" or token.text.lower() in ("and", "or", "not", "in", "contains", "exists"):
            raise self.fail("a field name, 'not' or '('")
        self.at += 1
        return self.test(token.text)

    def test(self, field: str) -> Predicate:  # noqa: PLR0911 - one return per test form reads best
        op = self.symbol("=", "!=", "<", "<=", ">", ">=")
        if op == "=":
            return Eq(field, self.value())
        if op == "!=":
            return Not(Eq(field, self.value()))
        if op is not None:
            return Range(field, **{_COMPARISONS[op]: self.value()})
        word = self.keyword("in", "contains", "exists", "between")
        if word == "in":
            return In(field, self.choices())
        if word == "contains":
            return Contains(field, str(self.value()))
        if word == "exists":
            return Exists(field)
        if word == "between":
            low = self.value()
            if not self.keyword("and"):
                raise self.fail("'and' after the lower bound")
            return Range(field, gte=low, lte=self.value())
        raise self.fail("=, !=, <, <=, >, >=, in, contains, exists or between")

    def choices(self) -> tuple[Scalar, ...]:
        if not self.symbol("("):
            raise self.fail("'(' after in")
        values = [self.value()]
        while self.symbol(","):
            values.append(self.value())
        if not self.symbol(")"):
            raise self.fail("',' or ')'")
        return tuple(values)

    def value(self) -> Scalar:
        token = self.peek
        if token.kind in ("string", "number") or (token.kind == "word" and token.text.lower() not in _KEYWORDS):
            self.at += 1
            return token.value
        raise self.fail("a value (a number, \"text\" or a word)")


_KEYWORDS = frozenset({"and", "or", "not", "in", "contains", "exists", "between"})


def parse(source: str) -> Predicate:
    """The predicate `source` spells; SubscriptionError with the column of the first problem."""
    if len(source) > MAX_LENGTH:
        raise SubscriptionError(f"where: longer than {MAX_LENGTH} characters")
    if not source.strip():
        raise SubscriptionError("where: empty condition")
    parser = _Parser(source)
    predicate = parser.expr()
    if parser.peek.kind != "end":
        raise parser.fail("'and', 'or' or the end")
    return checked(predicate)


def _quoted(value: Scalar) -> str:
    return json.dumps(value, ensure_ascii=False) if isinstance(value, str) else repr(value)


def text(predicate: Predicate) -> str:  # noqa: PLR0911 - one return per node type reads best
    """`predicate` in the text form. `parse(text(p)) == p` for what `parse` makes; a range with other bounds than
    `between` comes back as the equivalent `and` of one-bound ranges."""
    match predicate:
        case And(parts):
            return " and ".join(f"({text(p)})" if isinstance(p, And | Or) else text(p) for p in parts)
        case Or(parts):
            return " or ".join(f"({text(p)})" if isinstance(p, Or) else text(p) for p in parts)
        case Not(Eq(field, value)):
            return f"{field} != {_quoted(value)}"
        case Not(part):
            return f"not ({text(part)})" if isinstance(part, And | Or) else f"not {text(part)}"
        case Exists(field):
            return f"{field} exists"
        case Eq(field, value):
            return f"{field} = {_quoted(value)}"
        case In(field, values):
            return f"{field} in ({', '.join(_quoted(v) for v in values)})"
        case Contains(field, value):
            return f"{field} contains {_quoted(value)}"
        case Range():
            return _range_text(predicate)
    raise TypeError(f"not a predicate: {predicate!r}")


def _range_text(r: Range) -> str:
    if r.gt is None and r.lt is None and r.gte is not None and r.lte is not None:
        return f"{r.field} between {_quoted(r.gte)} and {_quoted(r.lte)}"
    ops = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
    bounds = [(op, getattr(r, key)) for key, op in ops.items() if getattr(r, key) is not None]
    joined = " and ".join(f"{r.field} {op} {_quoted(v)}" for op, v in bounds)
    return f"({joined})" if len(bounds) > 1 else joined


def summary(f: Filter) -> str:
    """One line for listings: kinds, ratings, activities and the where condition; `all changes` when empty."""
    parts = [*sorted(f.kinds), *([f"rating ≥ {f.min_rating}"] if f.min_rating else []),
             *([f"rating ≤ {f.max_rating}"] if f.max_rating else []), *sorted(f.activities),
             *([text(f.where)] if f.where is not None else [])]
    return ", ".join(parts) or "all changes"
