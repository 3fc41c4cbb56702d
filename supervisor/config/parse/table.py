"""The table-driven keyword machinery shared by every block parser.

A block is parsed by looking each statement's keyword up in a table of handlers; a handler reads the
arguments with ``supervisor.config.values`` and sets a field of the model object. The factories below
build the common handlers so that a table reads like keepalived's keyword list: name, reader, field.
Unknown keywords are errors at their FILE:LINE, as in keepalived ("Unknown keyword").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from supervisor.config import values as v
from supervisor.config.diag import Diagnostics, Where
from supervisor.config.tree import Node


@dataclass
class Ctx:
    """What handlers share while one configuration is parsed."""

    diag: Diagnostics
    # Deferred checks run after the whole tree is read (references to blocks defined later).
    deferred: list[Callable[[], None]] = field(default_factory=list)
    # Every script the configuration would run, for the central existence and security checks
    # (supervisor.config.scripts): where it was configured, its command line, and its user if set.
    scripts: list[ScriptRef] = field(default_factory=list)
    # Keywords seen per model object (by id), for defaults that depend on what was written
    # (e.g. `state MASTER` without `priority` means 255) and for duplicate detection.
    seen: dict[int, set[str]] = field(default_factory=dict)
    next_rule_preference: int = 16384
    # Names already defined, per kind of named block (vrrp_instances, vrrp_scripts, ...).
    names: dict[str, set[str]] = field(default_factory=dict)

    def was_set(self, obj: Any, keyword: str) -> bool:
        return keyword in self.seen.get(id(obj), ())


@dataclass(frozen=True)
class ScriptRef:
    where: Where
    cmdline: str
    # The model object the script belongs to; its ``user`` field, if any, is read at check time
    # (the `user` keyword may come after the script in its block).
    owner: Any = None

    @property
    def user(self) -> str | None:
        user = getattr(self.owner, "user", None)
        return user if isinstance(user, str) else None


Handler = Callable[[Node, Any, Ctx], None]


class Table:
    """Keyword → handler for one kind of block."""

    def __init__(self, name: str, handlers: dict[str, Handler]) -> None:
        self.name = name
        self.handlers = handlers

    def apply(self, nodes: list[Node], obj: Any, ctx: Ctx) -> None:
        for node in nodes:
            handler = self.handlers.get(node.keyword)
            if handler is None:
                ctx.diag.error(node.where, f"unknown keyword '{node.keyword}' in {self.name}")
                continue
            ctx.seen.setdefault(id(obj), set()).add(node.keyword)
            handler(node, obj, ctx)

    def extend(self, more: dict[str, Handler]) -> Table:
        return Table(self.name, {**self.handlers, **more})


def source(where: Where) -> str:
    return f"{where.file}:{where.line}"


def needs_block(node: Node, ctx: Ctx) -> bool:
    if node.children is None:
        ctx.diag.error(node.where, f"{node.keyword}: missing '{{' to open its block")
        return False
    return True


def no_block(node: Node, ctx: Ctx) -> bool:
    if node.children is not None:
        ctx.diag.error(node.where, f"{node.keyword}: unexpected '{{' (this keyword takes no block)")
        return False
    return True


# -- handler factories ---------------------------------------------------------------------------


def int_(name: str, lo: int | None = None, hi: int | None = None) -> Handler:
    def handle(node: Node, obj: Any, ctx: Ctx) -> None:
        value = v.parse_int(node, ctx.diag, 0, lo, hi)
        if value is not None:
            setattr(obj, name, value)

    return handle


def timer(name: str, lo: float | None = 0.0, hi: float | None = None) -> Handler:
    def handle(node: Node, obj: Any, ctx: Ctx) -> None:
        value = v.parse_timer(node, ctx.diag, 0, lo, hi)
        if value is not None:
            setattr(obj, name, value)

    return handle


def flag(name: str, value: Any = True) -> Handler:
    def handle(node: Node, obj: Any, ctx: Ctx) -> None:
        if node.args:
            ctx.diag.warn(node.where, f"{node.keyword}: ignoring extra arguments {' '.join(node.args)!r}")
        setattr(obj, name, value)

    return handle


def bool_opt(name: str) -> Handler:
    """A flag that may also take an explicit <BOOL>."""

    def handle(node: Node, obj: Any, ctx: Ctx) -> None:
        value = v.flag_or_bool(node, ctx.diag)
        if value is not None:
            setattr(obj, name, value)

    return handle


def word(name: str) -> Handler:
    def handle(node: Node, obj: Any, ctx: Ctx) -> None:
        value = v.arg(node, ctx.diag)
        if value is not None:
            setattr(obj, name, value)

    return handle


def script(name: str) -> Handler:
    """A command line, kept as written (quotes included) for the role that splits it into argv."""

    def handle(node: Node, obj: Any, ctx: Ctx) -> None:
        if not node.args:
            ctx.diag.error(node.where, f"{node.keyword}: missing script")
            return
        setattr(obj, name, v.rest(node))
        ctx.scripts.append(ScriptRef(node.where, v.rest(node), obj))

    return handle


def rest_words(name: str, what: str) -> Handler:
    """All arguments joined by one space (a virtualhost, a helo name, ...), at least one required."""

    def handle(node: Node, obj: Any, ctx: Ctx) -> None:
        if not node.args:
            ctx.diag.error(node.where, f"{node.keyword}: missing {what}")
            return
        setattr(obj, name, " ".join(node.args))

    return handle


def choice(name: str, choices: dict[str, str]) -> Handler:
    def handle(node: Node, obj: Any, ctx: Ctx) -> None:
        value = v.parse_choice(node, ctx.diag, choices)
        if value is not None:
            setattr(obj, name, value)

    return handle


def ip(name: str) -> Handler:
    def handle(node: Node, obj: Any, ctx: Ctx) -> None:
        value = v.parse_ip(node, ctx.diag)
        if value is not None:
            setattr(obj, name, str(value))

    return handle


def words_list(name: str) -> Handler:
    """A block (or line) of plain words collected into a list field, e.g. notification_email."""

    def handle(node: Node, obj: Any, ctx: Ctx) -> None:
        items: list[str] = getattr(obj, name)
        items.extend(node.args)
        for child in node.block():
            items.append(child.keyword)
            items.extend(child.args)

    return handle


def no_effect_yet(what: str = "") -> Handler:
    """Accepted for compatibility; the behaviour is not built yet: one warning per keyword."""

    def handle(node: Node, obj: Any, ctx: Ctx) -> None:
        extra = f" ({what})" if what else ""
        ctx.diag.notice_once(
            f"no-effect:{node.keyword}", node.where, f"'{node.keyword}' accepted, has no effect yet{extra}"
        )

    return handle


def not_applicable(why: str) -> Handler:
    """Accepted, and will never have an effect here (e.g. a DPVS-only keyword): one warning per keyword."""

    def handle(node: Node, obj: Any, ctx: Ctx) -> None:
        ctx.diag.notice_once(f"n/a:{node.keyword}", node.where, f"'{node.keyword}' has no effect here: {why}")

    return handle


DPVS_ONLY = "only the DPVS (DPDK) data plane honours it"
BFD_UNSUPPORTED = "BFD is not supported by pykeepalived"


def deprecated(replacement: Handler, old: str, new: str) -> Handler:
    def handle(node: Node, obj: Any, ctx: Ctx) -> None:
        ctx.diag.warn_once(f"deprecated:{old}", node.where, f"'{old}' is deprecated, use '{new}'")
        replacement(node, obj, ctx)

    return handle


def fork_spelling(replacement: Handler, old: str, new: str) -> Handler:
    """A keepalived 1.x spelling that the LVS fork configs still use: accepted with a notice only.

    keepalived 2.2.7 calls these deprecated (config-test code 5); pykeepalived takes the fork's
    configurations as they are, so they must not change the verdict.
    """

    def handle(node: Node, obj: Any, ctx: Ctx) -> None:
        ctx.diag.notice_once(f"fork:{old}", node.where, f"'{old}' accepted as keepalived 2's '{new}'")
        replacement(node, obj, ctx)

    return handle
