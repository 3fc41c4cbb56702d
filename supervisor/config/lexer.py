"""Reading keepalived.conf text into logical lines of tokens: the preprocessor and the lexer.

This module does everything keepalived's ``read_line()`` does before a keyword is looked up:
comments, ``include`` (with globs and csh brace expansion), ``@ID``/``@^ID`` conditional lines,
``$NAME=VALUE`` definitions (multi-line ones too) and their substitution, the pre-defined
``${_PWD}``-style definitions, and ``~SEQ``/``~LST`` line replication. What comes out is a flat list of
:class:`Line` objects, each split into :class:`Token` words; matching braces into a tree is
:func:`supervisor.config.tree.build_tree`'s job.

Every input mistake becomes a problem in the caller's :class:`Diagnostics` with the file and line it
came from; nothing here raises for bad input, and every expansion (includes, definitions, sequences)
is bounded so that no input can make the reader loop forever or exhaust memory.

Where keepalived 2.2.7's behaviour is odd but observable we follow it (for example a ``#`` produced by
substitution outside double quotes starts a comment, as it does there); the word splitting follows
keepalived's quote-and-escape rules (its script command-line reader), which is what the man page's
"Quoted strings" section describes. ``split_plain`` gives keepalived's simpler generic word split, for
the few values (regular expressions) where its escapes must not be applied.
"""

from __future__ import annotations

import contextlib
import gc
import glob
import itertools
import os
import random
import re
import socket
import stat
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from supervisor.config.diag import Diagnostics, Where

__all__ = [
    "MAX_EXPANDED_LINES",
    "MAX_INCLUDE_DEPTH",
    "Line",
    "Token",
    "default_config_id",
    "pause_gc",
    "read_lines",
    "read_text",
    "split_escaped",
    "split_plain",
]

# Bounds that turn runaway input into a diagnostic instead of a hang.
MAX_INCLUDE_DEPTH = 32
MAX_EXPANDED_LINES = 1_000_000  # lines produced by ~SEQ/~LST and multi-line definitions together
MAX_SUBSTITUTIONS_PER_LINE = 10_000
MAX_LINE_CHARS = 1_000_000
MAX_MULTILINE_NESTING = 64

_WHITESPACE = " \t\f\n\r\v"  # keepalived's WHITE_SPACE_STR


@dataclass(frozen=True, slots=True)
class Token:
    text: str  # quotes removed, escapes applied
    quoted: bool  # came from a quoted string (so a quoted "{" is not a brace)


@dataclass(frozen=True, slots=True)
class Line:
    where: Where  # file and 1-based line number where this logical line came from
    tokens: tuple[Token, ...]
    raw: str  # the line text after comment removal and $definition substitution, quotes kept
    # (start, end) of each token in ``raw``. Empty when every token is an unquoted literal substring of
    # ``raw`` in order (the common case, which build_tree can locate itself); not part of equality.
    spans: tuple[tuple[int, int], ...] = field(default=(), compare=False)


@contextlib.contextmanager
def pause_gc() -> Iterator[None]:
    """Hold off the cyclic garbage collector while building many small acyclic objects.

    Reading a large configuration creates hundreds of thousands of tokens and lines that all stay
    alive; every collector pass would walk them again for nothing (it costs about 40% of the time).
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def default_config_id() -> str:
    """keepalived's default config-id: the first label of the host name."""
    return socket.gethostname().split(".", 1)[0]


# ---------------------------------------------------------------------------------------------------
# Word splitting


_ESCAPES = {"a": "\a", "b": "\b", "E": "\x1b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}
_HEX = "0123456789abcdefABCDEF"
_OCT = "01234567"


def _escape(text: str, i: int) -> tuple[str, int]:
    """Decode the escape whose backslash is at ``text[i]``; returns the character and the next index."""
    n = len(text)
    if i + 1 >= n:
        return "\\", n
    c = text[i + 1]
    if c == "x" and i + 2 < n and text[i + 2] in _HEX:
        j = i + 2
        while j < n and j < i + 4 and text[j] in _HEX:
            j += 1
        return chr(int(text[i + 2 : j], 16)), j
    if c == "c" and i + 2 < n:
        return chr(ord(text[i + 2]) & 0x1F), i + 3
    if c in _OCT:
        j = i + 1
        while j < n and j < i + 4 and text[j] in _OCT:
            j += 1
        return chr(int(text[i + 1 : j], 8) & 0xFF), j
    return _ESCAPES.get(c, c), i + 2


def _split(text: str, *, braces: bool) -> tuple[list[Token], list[tuple[int, int]], str | None]:
    """Split ``text`` into words the way keepalived's quoted-and-escaped reader does.

    Returns the tokens, their spans in ``text`` and, for an unterminated quote, the quote character
    (the rest of the text then forms the last word). With ``braces``, unquoted ``{`` and ``}`` are
    words of their own wherever they stand.
    """
    tokens: list[Token] = []
    spans: list[tuple[int, int]] = []
    unterminated: str | None = None
    n = len(text)
    i = 0
    stops = _WHITESPACE + "\"'\\" + ("{}" if braces else "")
    while i < n:
        c = text[i]
        if c in _WHITESPACE:
            i += 1
            continue
        if braces and c in "{}":
            tokens.append(Token(c, False))
            spans.append((i, i + 1))
            i += 1
            continue
        start = i
        parts: list[str] = []
        quoted = False
        while i < n:
            c = text[i]
            if c == "\\":
                ch, i = _escape(text, i)
                parts.append(ch)
            elif c == '"' or c == "'":
                quoted = True
                i += 1
                # Inside quotes only the closing quote and backslash are special.
                while i < n and text[i] != c:
                    if text[i] == "\\":
                        ch, i = _escape(text, i)
                        parts.append(ch)
                    else:
                        j = i
                        while j < n and text[j] != c and text[j] != "\\":
                            j += 1
                        parts.append(text[i:j])
                        i = j
                if i >= n:
                    unterminated = c
                    break
                i += 1
            elif c in stops:
                break
            else:
                j = i + 1
                while j < n and text[j] not in stops:
                    j += 1
                parts.append(text[i:j])
                i = j
        tokens.append(Token("".join(parts), quoted))
        spans.append((start, i))
    return tokens, spans, unterminated


def split_escaped(text: str) -> list[str]:
    """Words of ``text`` with quotes removed and escapes applied (braces are ordinary characters).

    This is the second-level split keepalived applies to a script's command string to get its argv.
    An unterminated quote extends the last word to the end of the text.
    """
    return [t.text for t in _split(text, braces=False)[0]]


def split_plain(text: str) -> list[str]:
    """keepalived's generic word split: only double quotes group, and backslashes are literal.

    Useful where a value must reach its consumer exactly as written, such as a regular expression.
    """
    words: list[str] = []
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i] in _WHITESPACE:
            i += 1
        if i >= n:
            break
        if text[i] == '"':
            end = text.find('"', i + 1)
            if end < 0:
                words.append(text[i + 1 :])
                break
            words.append(text[i + 1 : end])
            i = end + 1
        else:
            j = i
            while j < n and text[j] not in _WHITESPACE and text[j] != '"':
                j += 1
            words.append(text[i:j])
            i = j
    return words


# ---------------------------------------------------------------------------------------------------
# Comments


def _decomment(text: str) -> tuple[str, bool]:
    """Strip a comment and surrounding blanks, as keepalived's decomment() does.

    ``#`` and ``!`` start a comment outside double quotes (keepalived does not let single quotes
    protect them); ``\\#`` and ``\\!`` outside double quotes lose their backslash. A trailing lone
    backslash is kept (it continues a definition). Returns the text and whether a double quote was
    left open.
    """
    out: list[str] = []
    quote = False
    i = 0
    n = len(text)
    while i < n:
        j = i
        while j < n and text[j] not in '#!"\\':
            j += 1
        out.append(text[i:j])
        if j >= n:
            break
        c = text[j]
        if c == '"':
            quote = not quote
            out.append(c)
            i = j + 1
        elif c == "\\":
            if j + 1 >= n:
                out.append(c)
                i = n
            elif not quote and text[j + 1] in "#!":
                out.append(text[j + 1])
                i = j + 2
            else:
                out.append(text[j : j + 2])
                i = j + 2
        elif quote:
            out.append(c)
            i = j + 1
        else:
            break
    return "".join(out).strip(" \t"), quote


# ---------------------------------------------------------------------------------------------------
# The reader

# Lines with none of these characters need no comment, quote, escape, definition or conditional
# handling, and split with str.split(): the hot path for large generated configurations.
_NEEDS_SLOW_PATH = re.compile(r"[#!\"'\\$~@]|[^\x20-\x7e\t]")
_DEFINITION = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)=(.*)", re.DOTALL)
_BAD_DEFINITION = re.compile(r"\$(?!\{)([^\s=]*)([ \t]*)=")
_REFERENCE = re.compile(
    r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)([ \tA-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*)(?=[ \t,)]|$))"
)
_INCLUDE = re.compile(r"include([rmwba]?)[ \t\f\n\r\v]+(.*)", re.DOTALL)
_SEQ_HEAD = re.compile(r"~SEQ(x?)[ \t]*\([ \t]*([^ \t,)]*)[ \t]*")
_INT = re.compile(r"[ \t]*([+-]?(?:0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*))[ \t]*")

# include_check classes (keepalived's INCLUDE_R/M/W/B): which include failures are errors.
_INC_READABLE, _INC_MATCH, _INC_WILDCARD, _INC_BRACE = 1, 2, 4, 8
_INC_ALL = _INC_READABLE | _INC_MATCH | _INC_WILDCARD | _INC_BRACE
_INCLUDE_CHECKS = {
    "": 0,
    "r": _INC_READABLE,
    "m": _INC_READABLE | _INC_MATCH,
    "w": _INC_READABLE | _INC_MATCH | _INC_WILDCARD,
    "b": _INC_READABLE | _INC_BRACE,
    "a": _INC_ALL,
}


@dataclass(slots=True)
class _Definition:
    lines: list[str]  # one entry for a plain definition; the value's lines for a multi-line one
    multiline: bool


@dataclass(slots=True)
class _FileFrame:
    path: str  # as shown in diagnostics
    dir: str  # relative includes and ${_PWD} resolve from here
    lines: list[str]
    chain: tuple[tuple[str, str], ...]  # (identity, display) of this file and the files including it
    index: int = 0


@dataclass(slots=True)
class _TextFrame:
    """Lines that replace a use of a multi-line definition, processed as if read from the file."""

    lines: Iterator[str]
    where: Where
    dir: str


@dataclass(slots=True)
class _SeqFrame:
    """A pending ~SEQ or ~LST: each step sets its variables and processes ``text`` again."""

    names: list[str]
    values: Iterator[list[str]]
    text: str
    where: Where
    dir: str


_Frame = _FileFrame | _TextFrame | _SeqFrame


def _c_int(literal: str) -> int:
    """An integer written as C's strtol(…, 0) reads it: 0x hex, leading-0 octal, else decimal."""
    sign = -1 if literal.startswith("-") else 1
    digits = literal.lstrip("+-")
    if digits[:2] in ("0x", "0X"):
        return sign * int(digits[2:], 16)
    if len(digits) > 1 and digits.startswith("0"):
        return sign * int(digits, 8)
    return sign * int(digits)


def _brace_expand(pattern: str) -> list[str]:
    """csh-style ``{a,b}`` expansion as glob(GLOB_BRACE) does it, nested, left to right."""
    depth = 0
    start = -1
    commas: list[int] = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            i += 2
            continue
        if c == "{":
            if depth == 0:
                start = i
                commas = []
            depth += 1
        elif c == "," and depth == 1:
            commas.append(i)
        elif c == "}" and depth > 0:
            depth -= 1
            if depth == 0:
                bounds = [start, *commas, i]
                head, tail = pattern[:start], pattern[i + 1 :]
                results: list[str] = []
                for a, b in itertools.pairwise(bounds):
                    results.extend(_brace_expand(head + pattern[a + 1 : b] + tail))
                return results
        i += 1
    return [pattern]


class _TokenCache(dict[str, Token]):
    """Unquoted tokens by text: a configuration repeats few distinct words, so each Token is built once."""

    def __missing__(self, text: str) -> Token:
        tok = self[text] = Token(text, False)
        return tok


class _Reader:
    def __init__(
        self,
        diag: Diagnostics,
        *,
        config_id: str | None,
        instance: str | None,
        environ: Mapping[str, str] | None,
        random_seed: int | None,
        strict_includes: bool,
    ) -> None:
        self.diag = diag
        self.config_id = default_config_id() if config_id is None else config_id
        self.instance = self.config_id if instance is None else instance
        self.environ: Mapping[str, str] = os.environ if environ is None else environ
        self.random = random.Random(random_seed)
        self.strict = strict_includes
        self.defs: dict[str, _Definition] = {}
        self.out: list[Line] = []
        self.stack: list[_Frame] = []
        # A multi-line definition being collected, and the file frame it started in.
        self.collecting: _Definition | None = None
        self.collecting_in: _FileFrame | None = None
        self.expanded = 0
        self.expansion_exhausted = False
        self.token_cache = _TokenCache()

    # -- driving ------------------------------------------------------------------------------------

    def run(self, frame: _FileFrame) -> list[Line]:
        self.stack.append(frame)
        while self.stack:
            top = self.stack[-1]
            if isinstance(top, _FileFrame):
                if self._run_file(top):
                    self.stack.pop()
                    if self.collecting_in is top:
                        self._end_definition()
            elif isinstance(top, _TextFrame):
                text = next(top.lines, None)
                if text is None:
                    self.stack.pop()
                elif self._count_expansion(top.where):
                    self._process(text, top.where, top.dir, from_file=False)
            else:
                self._step_seq(top)
        self._end_definition()
        return self.out

    def _run_file(self, frame: _FileFrame) -> bool:
        """Process lines of ``frame`` until it ends (True) or a line pushed a new frame (False)."""
        lines = frame.lines
        path = frame.path
        out = self.out
        token = self.token_cache.__getitem__
        slow = _NEEDS_SLOW_PATH.search
        depth = len(self.stack)
        n = len(lines)
        i = frame.index
        plain = self.collecting is None
        while i < n:
            line = lines[i]
            i += 1
            if plain and line and slow(line) is None:
                text = line.strip(" \t")
                if not text:
                    continue
                if not text.startswith("include"):
                    if "{" in text or "}" in text:
                        words = text.replace("{", " { ").replace("}", " } ").split()
                    else:
                        words = text.split()
                    out.append(Line(Where(path, i), tuple(map(token, words)), text))
                    continue
            if line.endswith("\r"):
                line = line.rstrip("\r")
            self._process(line, Where(path, i), frame.dir, from_file=True)
            plain = self.collecting is None
            if len(self.stack) != depth:
                frame.index = i
                return False
        frame.index = i
        return True

    def _count_expansion(self, where: Where) -> bool:
        if self.expansion_exhausted:
            return False
        self.expanded += 1
        if self.expanded > MAX_EXPANDED_LINES:
            self.expansion_exhausted = True
            self.diag.error(
                where,
                f"~SEQ/~LST and multi-line definitions expand to more than {MAX_EXPANDED_LINES} lines;"
                " the rest of the expansion is dropped",
            )
            # Abandon every expansion in progress; files keep being read.
            self.stack = [f for f in self.stack if isinstance(f, _FileFrame)]
            return False
        return True

    # -- one line -----------------------------------------------------------------------------------

    def _process(self, text: str, where: Where, dirpath: str, *, from_file: bool) -> None:
        if self.collecting is not None:
            self._continue_definition(text, where, from_file=from_file)
            return
        if from_file:
            if not text:
                return
            text, _ = _decomment(text)
            if not text:
                return
        substitutions = 0
        while True:
            if text.startswith("@"):
                kept = self._conditional(text)
                if kept is None:
                    return
                text = kept
            if text.startswith("$"):
                if self._definition(text, where):
                    return
            if text.startswith(("~SEQ", "~LST")):
                self._start_seq(text, where, dirpath)
                return
            if text.startswith("~") or "$" not in text:
                break
            result = self._substitute(text, where, dirpath, substitutions)
            if result is None:
                break
            new_text, pending, substitutions = result
            if new_text is None:
                return
            for lines in pending:
                if len(self.stack) >= MAX_MULTILINE_NESTING + MAX_INCLUDE_DEPTH:
                    self.diag.error(where, "multi-line definitions nest too deeply (recursive definition?)")
                    return
                self.stack.append(_TextFrame(iter(lines), where, dirpath))
            # Substituted text is decommented again, as keepalived does: a '#' that a definition
            # brought in outside double quotes starts a comment.
            text, _ = _decomment(new_text)
            if not (text.startswith(("@", "~")) or "$" in text):
                break
        if not text:
            return
        if text.startswith("include") and self._include(text, where, dirpath):
            return
        self._emit(text, where)

    def _emit(self, text: str, where: Where) -> None:
        tokens, spans, unterminated = _split(text, braces=True)
        if unterminated is not None:
            self.diag.error(where, f"unmatched {unterminated} quote in: {text}")
        elif (len(text) - len(text.rstrip("\\"))) % 2 == 1:
            # keepalived continues lines only inside $NAME= definitions; here the '\' is just a character.
            self.diag.warn(where, "a trailing '\\' continues only a $NAME= definition; kept as a character")
        if tokens:
            self.out.append(Line(where, tuple(tokens), text, tuple(spans)))

    def _conditional(self, text: str) -> str | None:
        """Apply an ``@ID``/``@^ID`` prefix: the rest of the line, or None when the line is dropped."""
        negate = text.startswith("@^")
        start = 2 if negate else 1
        end = start
        while end < len(text) and text[end] not in " \t":
            end += 1
        if end >= len(text):
            return None  # nothing after the id: keepalived drops the line whatever the id
        if (text[start:end] == self.config_id) == negate:
            return None
        return text[end:].lstrip(" \t")

    # -- definitions --------------------------------------------------------------------------------

    def _definition(self, text: str, where: Where) -> bool:
        """Record ``$NAME=VALUE``; True if the line was a definition (good or bad) and is consumed."""
        m = _DEFINITION.fullmatch(text)
        if m is None:
            bad = _BAD_DEFINITION.match(text)
            if bad is None:
                return False
            name, space = bad.group(1), bad.group(2)
            if space and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                self.diag.error(where, f"bad definition '{text}': no space is allowed before '='")
            elif name:
                self.diag.error(
                    where,
                    f"bad definition '{text}': a name is letters, digits and '_', not starting with a digit",
                )
            else:
                self.diag.error(where, f"bad definition '{text}': no name before '='")
            return True
        name, value = m.group(1), m.group(2).lstrip(" \t")
        if value.endswith("\\"):
            first = value[:-1].rstrip(" \t")
            definition = _Definition([first] if first else [], multiline=True)
            self.collecting = definition
            top = self.stack[-1] if self.stack else None
            self.collecting_in = top if isinstance(top, _FileFrame) else None
        else:
            definition = _Definition([value], multiline=False)
        self.defs[name] = definition
        return True

    def _continue_definition(self, text: str, where: Where, *, from_file: bool) -> None:
        definition = self.collecting
        assert definition is not None
        if from_file:
            if not text:
                # keepalived ends a multi-line definition at an empty line.
                self._end_definition()
                return
            text, _ = _decomment(text)
            if not text:
                return  # comment-only lines do not end it
        if text.endswith("\\"):
            text = text[:-1].rstrip(" \t")
            if text:
                definition.lines.append(text)
            return
        definition.lines.append(text)
        self._end_definition()

    def _end_definition(self) -> None:
        definition = self.collecting
        if definition is not None and not definition.lines:
            definition.multiline = False
            definition.lines.append("")
        self.collecting = None
        self.collecting_in = None

    def _lookup(
        self, name: str, params: str, *, at_end: bool, where: Where, dirpath: str
    ) -> list[str] | None:
        """The replacement lines for a reference, or None when it stays as written."""
        user = self.defs.get(name)
        if user is not None:
            if params or (user.multiline and not at_end):
                return None
            return user.lines
        args = params.split()
        if name == "_RANDOM":
            if len(args) > 2 or not all(a.isdigit() for a in args):
                return None
            low = int(args[0]) if args else 0
            high = int(args[1]) if len(args) > 1 else 32767
            if low > high:
                self.diag.error(where, f"${{_RANDOM}}: min {low} exceeds max {high}, using {low}")
                high = low
            return [str(self.random.randint(low, high))]
        if name == "_ENV":
            if len(args) != 1:
                return None
            return [self.environ.get(args[0], "")]
        if args:
            return None
        if name == "_PWD":
            return [os.path.abspath(dirpath)]
        if name == "_INSTANCE":
            return [self.instance]
        if name == "_HASH":
            return ["#"]
        if name == "_BANG":
            return ["!"]
        return None

    def _substitute(
        self, text: str, where: Where, dirpath: str, count: int
    ) -> tuple[str | None, list[list[str]], int] | None:
        """Replace definition references, rescanning each replacement (so substitution is recursive).

        Returns None if nothing was replaced; else the new text (None if substitution ran away), the
        remaining lines of multi-line definitions used (outermost first) and the running count.
        """
        pending: list[list[str]] = []
        pos = 0
        replaced = False
        while True:
            m = _REFERENCE.search(text, pos)
            if m is None:
                break
            if m.group(1) is not None:
                name, params, at_end = m.group(1), m.group(2), m.end() == len(text)
                if params and params[-1] in " \t" and params.strip():
                    pos = m.start() + 1
                    continue
                params = params.strip()
            else:
                name, params, at_end = m.group(3), "", m.end() == len(text)
            lines = self._lookup(name, params, at_end=at_end, where=where, dirpath=dirpath)
            if lines is None:
                pos = m.start() + 1
                continue
            replaced = True
            count += 1
            value = lines[0] if lines else ""
            text = text[: m.start()] + value + text[m.end() :]
            if len(lines) > 1:
                pending.append(lines[1:])
            if count > MAX_SUBSTITUTIONS_PER_LINE or len(text) > MAX_LINE_CHARS:
                self.diag.error(where, f"substituting ${name} does not terminate (recursive definition?)")
                return None, [], count
            pos = m.start()
            # A value starting with '~' is a sequence: it is expanded before anything else.
            if value.lstrip(" \t").startswith("~"):
                break
        if not replaced:
            return None
        # The innermost multi-line remainder is processed first, so it goes on the stack last.
        return text, pending, count

    # -- ~SEQ and ~LST ------------------------------------------------------------------------------

    def _start_seq(self, text: str, where: Where, dirpath: str) -> None:
        if self.expansion_exhausted:
            return
        parsed = self._parse_seq(text, where, dirpath) if text[1] == "S" else self._parse_lst(text)
        if parsed is None:
            kind = "~SEQ" if text[1] == "S" else "~LST"
            self.diag.error(where, f"invalid {kind} specification '{text}'")
            return
        names, values, count, rest = parsed
        if count > MAX_EXPANDED_LINES - self.expanded:
            self.expansion_exhausted = True
            self.diag.error(
                where,
                f"'{text}' would expand to {count} lines, taking ~SEQ/~LST and multi-line definition"
                f" expansion past its limit of {MAX_EXPANDED_LINES} lines; not expanded",
            )
            self.stack = [f for f in self.stack if isinstance(f, _FileFrame)]
            return
        self.stack.append(_SeqFrame(names, values, rest, where, dirpath))

    def _step_seq(self, frame: _SeqFrame) -> None:
        values = next(frame.values, None)
        if values is None:
            self.stack.pop()
            return
        if not self._count_expansion(frame.where):
            return
        for name, value in zip(frame.names, values, strict=False):
            self.defs[name] = _Definition([value], multiline=False)
        self._process(frame.text, frame.where, frame.dir, from_file=False)

    def _parse_seq(
        self, text: str, where: Where, dirpath: str
    ) -> tuple[list[str], Iterator[list[str]], int, str] | None:
        head = _SEQ_HEAD.match(text)
        if head is None or not head.group(2) or text[head.end() : head.end() + 1] != ",":
            return None
        hexa = bool(head.group(1))
        close = text.find(")", head.end())
        if close < 0:
            return None
        params = text[head.end() + 1 : close]
        if "$" in params:
            result = self._substitute(params, where, dirpath, 0)
            if result is not None and result[0] is not None:
                if result[1]:
                    return None  # a multi-line definition cannot be a ~SEQ parameter
                params = result[0]
        numbers: list[int] = []
        for part in params.split(","):
            m = _INT.fullmatch(part)
            if m is None:
                return None
            numbers.append(_c_int(m.group(1)))
        if len(numbers) == 1:
            end = numbers[0]
            step = -1 if end < 1 else 1
            start = -1 if end < 0 else 1
        elif len(numbers) == 2:
            start, end = numbers
            step = 1 if start <= end else -1
        elif len(numbers) == 3:
            start, step, end = numbers
            if step == 0 or (start < end and step < 0) or (start > end and step > 0):
                return None
        else:
            return None
        if hexa and (start < 0 or end < 0):
            self.diag.error(where, f"~SEQx is only valid for positive numbers: '{text}'")
            return None
        count = max(0, (end - start) // step) + 1
        rest = text[close + 1 :].lstrip(" \t")

        def values() -> Iterator[list[str]]:
            value = start
            for _ in range(count):
                yield [format(value, "x") if hexa else str(value)]
                value += step

        return [head.group(2)], values(), count, rest

    @staticmethod
    def _parse_lst(text: str) -> tuple[list[str], Iterator[list[str]], int, str] | None:
        m = re.match(r"~LST[ \t]*\(", text)
        if m is None:
            return None
        close = -1
        depth = 0
        for i in range(m.end(), len(text)):
            if text[i] == "{":
                depth += 1
            elif text[i] == "}":
                depth -= 1
            elif text[i] == ")" and depth == 0:
                close = i
                break
        if close < 0:
            return None
        # Items are either plain words or {…} groups, separated by commas; the first names the variables.
        items = [item.strip(" \t") for item in re.findall(r"\{[^{}]*\}|[^,{}]+", text[m.end() : close])]
        items = [item for item in items if item]
        if len(items) < 2:
            return None
        names = [n.strip(" \t") for n in items[0].strip("{}").split(",")]
        if not all(re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", n) for n in names):
            return None
        value_sets: list[list[str]] = []
        for item in items[1:]:
            values = [v.strip(" \t") for v in item.strip("{}").split(",")] if item.startswith("{") else [item]
            if len(values) > len(names):
                return None
            value_sets.append(values + [""] * (len(names) - len(values)))
        rest = text[close + 1 :].lstrip(" \t")
        return names, iter(value_sets), len(value_sets), rest

    # -- include ------------------------------------------------------------------------------------

    def _include(self, text: str, where: Where, dirpath: str) -> bool:
        m = _INCLUDE.fullmatch(text)
        if m is None:
            return False
        checks = _INC_ALL if self.strict else _INCLUDE_CHECKS[m.group(1)]
        arg = m.group(2).strip(_WHITESPACE)
        words, _, unterminated = _split(arg, braces=False)
        # A quoted file name is accepted as one word (keepalived would glob the quotes literally).
        pattern = words[0].text if len(words) == 1 and unterminated is None else arg
        if not pattern:
            self.diag.error(where, "include needs a file name")
            return True
        including = self._current_file()
        chain = including.chain if including is not None else ()

        matched: list[str] = []
        missing: list[str] = []
        for alternative in _brace_expand(pattern):
            full = alternative if os.path.isabs(alternative) else os.path.join(dirpath, alternative)
            if glob.has_magic(full):
                found = sorted(glob.glob(full))
                if found:
                    matched.extend(found)
                else:
                    missing.append(alternative)
            elif os.path.lexists(full):
                matched.append(full)
            else:
                missing.append(alternative)

        if not matched:
            message = f"include '{pattern}': no file matches"
            if checks & (_INC_MATCH | _INC_WILDCARD | _INC_BRACE):
                self.diag.error(where, message)
            else:
                self._optional(where, message)
            return True
        if missing:
            message = f"include '{pattern}': no file matches {', '.join(repr(a) for a in missing)}"
            if checks & _INC_BRACE:
                self.diag.error(where, message)
            else:
                self._optional(where, message)

        frames: list[_FileFrame] = []
        for path in matched:
            frame = self._open_include(path, where, chain, checks)
            if frame is not None:
                frames.append(frame)
        # The stack is last-in first-out: push in reverse so the files are read in glob order.
        self.stack.extend(reversed(frames))
        return True

    def _optional(self, where: Where, message: str) -> None:
        """A remark about a plain include, which keepalived only logs: its -t verdict stays unchanged.

        That is a NOTICE where Diagnostics has that level, else a warning.
        """
        notice = getattr(self.diag, "notice", None)
        if callable(notice):
            notice(where, message)
        else:
            self.diag.warn(where, message)

    def _current_file(self) -> _FileFrame | None:
        for frame in reversed(self.stack):
            if isinstance(frame, _FileFrame):
                return frame
        return None

    def _open_include(
        self, path: str, where: Where, chain: tuple[tuple[str, str], ...], checks: int
    ) -> _FileFrame | None:
        identity = os.path.realpath(path)
        for i, (seen, _) in enumerate(chain):
            if seen == identity:
                route = " -> ".join(display for _, display in chain[i:])
                self.diag.error(where, f"include loop: {route} -> {path}; not included again")
                return None
        if len(chain) >= MAX_INCLUDE_DEPTH:
            self.diag.error(
                where, f"includes nest deeper than {MAX_INCLUDE_DEPTH} files; '{path}' not included"
            )
            return None
        try:
            st = os.stat(path)
        except OSError as e:
            self.diag.error(where, f"cannot read included file '{path}': {e.strerror or e}")
            return None
        if stat.S_ISDIR(st.st_mode):
            self.diag.error(where, f"included '{path}' is a directory, not a file")
            return None
        if not stat.S_ISREG(st.st_mode):
            self.diag.error(where, f"included '{path}' is not a regular file")
            return None
        if st.st_mode & (stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH):
            # keepalived refuses executable configuration files (a script put in conf.d by mistake).
            message = f"included '{path}' is executable; keepalived skips it"
            self.diag.error(where, message) if checks & _INC_READABLE else self.diag.warn(where, message)
            return None
        content = _read(path, self.diag, where, fatal=False)
        if content is None:
            return None
        return _FileFrame(path, os.path.dirname(path), content, (*chain, (identity, path)))


def _read(path: str, diag: Diagnostics, where: Where, *, fatal: bool) -> list[str] | None:
    """The file's lines, or None after reporting why it cannot be read."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        message = f"configuration file '{path}' not found"
    except IsADirectoryError:
        message = f"configuration file '{path}' is a directory"
    except OSError as e:
        message = f"cannot read configuration file '{path}': {e.strerror or e}"
    else:
        return _decode(data, path, diag).split("\n")
    if fatal:
        diag.fatal(where, message)
    else:
        diag.error(where, message.replace("configuration file", "included file", 1))
    return None


def _decode(data: bytes, name: str, diag: Diagnostics) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        diag.warn(Where(name, line), "text is not valid UTF-8; undecodable bytes replaced")
        return data.decode("utf-8", errors="replace")


def read_lines(
    path: str,
    diag: Diagnostics,
    *,
    config_id: str | None = None,
    instance: str | None = None,
    environ: Mapping[str, str] | None = None,
    random_seed: int | None = None,
    strict_includes: bool = False,
) -> list[Line]:
    """Read a configuration file and everything it includes into logical lines.

    A top-level file that cannot be read is a FATAL problem at ``path:0`` (keepalived's
    CONFIG_FILE_NOT_FOUND) and gives no lines. ``config_id`` defaults to the host name's first label;
    ``instance`` (``${_INSTANCE}``) defaults to the config-id. ``strict_includes`` makes every
    ``include`` behave as ``includea`` (keepalived's ``-e``/``include_check``).
    """
    lines = _read(path, diag, Where(path, 0), fatal=True)
    if lines is None:
        return []
    reader = _Reader(
        diag,
        config_id=config_id,
        instance=instance,
        environ=environ,
        random_seed=random_seed,
        strict_includes=strict_includes,
    )
    identity = os.path.realpath(path)
    with pause_gc():
        return reader.run(_FileFrame(path, os.path.dirname(path), lines, ((identity, path),)))


def read_text(
    text: str,
    diag: Diagnostics,
    *,
    name: str = "<string>",
    base_dir: str = ".",
    config_id: str | None = None,
    instance: str | None = None,
    environ: Mapping[str, str] | None = None,
    random_seed: int | None = None,
    strict_includes: bool = False,
) -> list[Line]:
    """Like :func:`read_lines` for text in memory; ``name`` labels its lines, includes resolve from ``base_dir``."""
    reader = _Reader(
        diag,
        config_id=config_id,
        instance=instance,
        environ=environ,
        random_seed=random_seed,
        strict_includes=strict_includes,
    )
    identity = os.path.realpath(name) if os.path.isabs(name) else f"<text:{name}>"
    with pause_gc():
        return reader.run(_FileFrame(name, base_dir, text.split("\n"), ((identity, name),)))
