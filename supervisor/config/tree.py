"""The statement tree of a configuration: what the lexer's lines become once braces are matched.

A statement is one logical line: a keyword, its arguments, and optionally a block of statements
opened with ``{``. Braces may stand anywhere on a line, as keepalived allows, so
``real_server 192.0.2.1 80 { weight 2 }`` and the same text spread over three lines give the same
tree. Inside list blocks (``virtual_ipaddress``, ``notification_email`` …) each entry is a statement
whose keyword is its first word. Every statement knows its file and line for error messages.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from supervisor.config.diag import Diagnostics, Where
from supervisor.config.lexer import Line, Token, pause_gc


@dataclass(slots=True)
class Node:
    keyword: str
    args: list[str]
    where: Where
    # The text after the keyword as written on its line (comments removed, quotes kept), for values
    # such as script command lines whose quoting matters.
    raw: str = ""
    # None: a plain statement; a list (possibly empty): the statement opened a block.
    children: list[Node] | None = None
    # Words that were quoted in the source, by index into args (a quoted "{" is not a brace).
    quoted: frozenset[int] = field(default_factory=frozenset)

    @property
    def is_block(self) -> bool:
        return self.children is not None

    def block(self) -> list[Node]:
        return self.children if self.children is not None else []


_NOT_QUOTED: frozenset[int] = frozenset()


def _spans(line: Line) -> list[tuple[int, int]] | None:
    """Where each token stands in ``line.raw``, or None if that cannot be known.

    The lexer records spans for lines that needed quote or escape handling; for the others every token
    is an unquoted literal substring of ``raw``, in order, so a left-to-right search finds them.
    """
    if len(line.spans) == len(line.tokens):
        return list(line.spans)
    spans: list[tuple[int, int]] = []
    pos = 0
    raw = line.raw
    for tok in line.tokens:
        if tok.quoted:
            return None
        start = raw.find(tok.text, pos)
        if start < 0:
            return None
        pos = start + len(tok.text)
        spans.append((start, pos))
    return spans


class _Builder:
    """Matches braces across lines; one instance per build_tree call."""

    def __init__(self, diag: Diagnostics) -> None:
        self.diag = diag
        self.root: list[Node] = []
        self.current = self.root
        # Open blocks, innermost last: the header node and the list its block's statements go into.
        self.open: list[tuple[Node, list[Node]]] = []
        # The last statement if nothing but line ends came after it: a "{" alone on the next line opens it.
        self.last_plain: Node | None = None

    def statement(
        self, line: Line, tokens: tuple[Token, ...], a: int, b: int, spans: list[tuple[int, int]] | None
    ) -> Node:
        args_tokens = tokens[a + 1 : b]
        args = [t.text for t in args_tokens]
        if not args:
            raw = ""
        elif spans is not None:
            raw = line.raw[spans[a + 1][0] : spans[b - 1][1]]
        else:
            raw = " ".join(args)
        quoted = _NOT_QUOTED
        for k, t in enumerate(args_tokens):
            if t.quoted:
                quoted = frozenset(k for k, t in enumerate(args_tokens) if t.quoted)
                break
        node = Node(tokens[a].text, args, line.where, raw, None, quoted)
        self.current.append(node)
        return node

    def open_block(self, header: Node) -> None:
        header.children = []
        self.open.append((header, self.current))
        self.current = header.children

    def line(self, line: Line) -> None:
        tokens = line.tokens
        if not tokens:
            return
        n = len(tokens)
        spans: list[tuple[int, int]] | None = None
        spans_known = False
        start = 0
        for i, tok in enumerate(tokens):
            text = tok.text
            if (text != "{" and text != "}") or tok.quoted:
                continue
            header: Node | None = None
            if i > start:
                if not spans_known:
                    spans, spans_known = _spans(line), True
                header = self.statement(line, tokens, start, i, spans)
            start = i + 1
            if text == "{":
                target = header if header is not None else self.last_plain
                if target is None:
                    self.diag.error(line.where, "'{' does not follow a statement; its block is ignored")
                    # A detached header keeps the braces balanced while its contents are dropped.
                    target = Node("{", [], line.where)
                self.open_block(target)
            else:
                if self.open:
                    self.current = self.open.pop()[1]
                else:
                    self.diag.error(line.where, "'}' closes no block; ignored")
            self.last_plain = None
        if start < n:
            if not spans_known:
                spans = _spans(line)
            self.last_plain = self.statement(line, tokens, start, n, spans)

    def finish(self) -> list[Node]:
        for header, _ in self.open:
            if header.keyword == "{":
                self.diag.error(header.where, "missing '}' for the block opened here")
            else:
                self.diag.error(header.where, f"missing '}}' for the '{header.keyword}' block opened here")
        self.open.clear()
        return self.root


def build_tree(lines: Iterable[Line], diag: Diagnostics) -> list[Node]:
    """Group lines into statements and blocks; brace problems are reported, never raised.

    A statement's words up to a ``{`` are its header; words after a ``{`` or ``}`` on the same line
    are further statements; a line holding only ``{`` opens the block of the statement just before
    it. A missing ``}`` is reported at the header of each block still open at the end, a stray ``}``
    at its own line.
    """
    builder = _Builder(diag)
    with pause_gc():
        for line in lines:
            builder.line(line)
    return builder.finish()
