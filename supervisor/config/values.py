"""Typed readers for keyword arguments, with keepalived's rules and messages.

Each reader takes the statement and the index of the argument, reports a problem at the statement's
FILE:LINE when the value is missing or invalid, and returns the value or None. Callers keep the
default when they get None, as keepalived does after a bad value.
"""

from __future__ import annotations

import functools
import ipaddress
import math
import re

from supervisor.config.diag import Diagnostics
from supervisor.config.tree import Node

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Large configurations repeat the same real-server and VIP addresses thousands of times, and the
# standard library's parsing is the costliest step of a load: parse each distinct text once.
# (The results are immutable, so sharing them is safe; a ValueError is not cached and re-raised.)
ip_address = functools.lru_cache(maxsize=65536)(ipaddress.ip_address)
ip_interface = functools.lru_cache(maxsize=65536)(ipaddress.ip_interface)

_TRUE = {"on", "true", "yes"}
_FALSE = {"off", "false", "no"}


def arg(node: Node, diag: Diagnostics, index: int = 0, what: str = "a value") -> str | None:
    """The argument at index, or None after reporting that it is missing."""
    if index < len(node.args):
        return node.args[index]
    diag.error(node.where, f"{node.keyword}: missing {what}")
    return None


def flag_or_bool(node: Node, diag: Diagnostics, index: int = 0) -> bool | None:
    """A keyword that means 'on' alone, or takes an explicit <BOOL> argument."""
    if index >= len(node.args):
        return True
    return parse_bool(node, diag, index)


def parse_bool(node: Node, diag: Diagnostics, index: int = 0) -> bool | None:
    word = arg(node, diag, index, "a boolean (on|off|true|false|yes|no)")
    if word is None:
        return None
    low = word.lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    diag.error(node.where, f"{node.keyword}: invalid boolean '{word}' (expected on|off|true|false|yes|no)")
    return None


def parse_int(
    node: Node, diag: Diagnostics, index: int = 0, lo: int | None = None, hi: int | None = None,
    what: str = "a number",
) -> int | None:
    word = arg(node, diag, index, what)
    if word is None:
        return None
    try:
        value = int(word, 0) if word.lower().startswith(("0x", "0o")) else int(word, 10)
    except ValueError:
        diag.error(node.where, f"{node.keyword}: invalid number '{word}'")
        return None
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        diag.error(node.where, f"{node.keyword}: value {value} out of range [{lo}, {hi}]")
        return None
    return value


_TIMER = re.compile(r"^[0-9]*\.?[0-9]+$|^[0-9]+\.$")


def parse_timer(
    node: Node, diag: Diagnostics, index: int = 0, lo: float | None = None, hi: float | None = None,
) -> float | None:
    """A <TIMER>: decimal seconds, kept to microsecond resolution as keepalived keeps them."""
    word = arg(node, diag, index, "a time in seconds")
    if word is None:
        return None
    if not _TIMER.match(word):
        diag.error(node.where, f"{node.keyword}: invalid time '{word}'")
        return None
    value = round(float(word), 6)
    if not math.isfinite(value) or (lo is not None and value < lo) or (hi is not None and value > hi):
        diag.error(node.where, f"{node.keyword}: time {word} out of range [{lo}, {hi}]")
        return None
    return value


def parse_ip(node: Node, diag: Diagnostics, index: int = 0, what: str = "an IP address") -> IPAddress | None:
    word = arg(node, diag, index, what)
    if word is None:
        return None
    return ip_or_error(node, diag, word)


def ip_or_error(node: Node, diag: Diagnostics, word: str) -> IPAddress | None:
    try:
        return ip_address(word.split("%", 1)[0])
    except ValueError:
        diag.error(node.where, f"{node.keyword}: invalid IP address '{word}'")
        return None


def parse_prefix(node: Node, diag: Diagnostics, word: str) -> ipaddress.IPv4Interface | ipaddress.IPv6Interface | None:
    """ADDR[/LEN]; a bare address gets the host prefix (/32 or /128), as keepalived gives it."""
    try:
        return ip_interface(word)
    except ValueError:
        diag.error(node.where, f"{node.keyword}: invalid IP address '{word}'")
        return None


def parse_port(node: Node, diag: Diagnostics, index: int) -> int | None:
    return parse_int(node, diag, index, 0, 65535, "a port")


def parse_choice(node: Node, diag: Diagnostics, choices: dict[str, str], index: int = 0) -> str | None:
    """One of a fixed set of words (case-insensitive); returns the canonical spelling."""
    word = arg(node, diag, index, "|".join(sorted(set(choices.values()))))
    if word is None:
        return None
    found = choices.get(word.lower())
    if found is None:
        diag.error(node.where, f"{node.keyword}: invalid value '{word}' (expected {'|'.join(sorted(set(choices.values())))})")
    return found


def rest(node: Node) -> str:
    """All arguments as written (the script command line), quotes kept."""
    return node.raw.strip()
