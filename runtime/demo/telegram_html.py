"""Telegram's `parse_mode=HTML` rules, for the Bot API stand-in: which tags pass, and the text users see.

Telegram accepts only b/strong, i/em, u/ins, s/strike/del, a href, code, pre, blockquote, tg-spoiler,
span class="tg-spoiler" and tg-emoji; the only named entities are &lt; &gt; &amp; &quot;. Anything else is
`Bad Request: can't parse entities: …`, which is what an unescaped `<` or `&` in a place name would cause.
"""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser

TAGS = frozenset({"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "a", "code", "pre", "blockquote",
                  "tg-spoiler", "span", "tg-emoji"})
_ENTITY = re.compile(r"&(#\d+|#x[0-9a-fA-F]+|[A-Za-z]+);?")
NAMED = frozenset({"lt", "gt", "amp", "quot"})


class _Checker(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.open: list[str] = []
        self.problem: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in TAGS:
            self.problem = self.problem or f'Unsupported start tag "{tag}"'
        elif tag == "a" and not dict(attrs).get("href"):
            self.problem = self.problem or "Can't find end of the entity: a without href"
        self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.open or self.open[-1] != tag:
            self.problem = self.problem or f'Can\'t find end tag corresponding to start tag "{tag}"'
        else:
            self.open.pop()


def html_problem(text: str) -> str | None:
    """Why Telegram would refuse `text` as HTML; None when it would accept it."""
    for match in _ENTITY.finditer(text):
        name = match.group(1)
        if not match.group(0).endswith(";") or (not name.startswith("#") and name not in NAMED):
            return f'Unsupported HTML entity "{match.group(0)}"'
    if re.search(r"&(?![#A-Za-z])", text):
        return 'Unexpected end of name token "&"'
    checker = _Checker()
    checker.feed(text)
    checker.close()
    if checker.problem:
        return checker.problem
    if "<" in re.sub(r"</?[A-Za-z][^<>]*>", "", text):
        return 'Unexpected character "<": escape it as &lt;'
    return f'Can\'t find end tag corresponding to start tag "{checker.open[-1]}"' if checker.open else None


def plain_text(text: str) -> str:
    """What the user reads: tags removed, entities decoded."""
    return html.unescape(re.sub(r"<[^>]*>", "", text))
