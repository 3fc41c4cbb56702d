"""The statement tree of a configuration: what the lexer's lines become once braces are matched.

A statement is one logical line: a keyword, its arguments, and optionally a block of statements
opened with ``{``. Braces may stand anywhere on a line, as keepalived allows, so
``real_server 192.0.2.1 80 { weight 2 }`` and the same text spread over three lines give the same
tree. Inside list blocks (``virtual_ipaddress``, ``notification_email`` …) each entry is a statement
whose keyword is its first word. Every statement knows its file and line for error messages.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from supervisor.config.diag import Where


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
