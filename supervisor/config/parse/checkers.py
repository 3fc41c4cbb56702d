"""Keyword tables for the health checkers inside a real_server block.

Each checker keyword (HTTP_GET, TCP_CHECK …) opens a block parsed into one ``model.checkers.Checker``.
Inheritance (checker ← real server ← virtual server) needs to know which keywords a block actually
wrote, so blocks are parsed through ``Tracked``, a thin proxy that records every field a handler sets;
``parse.lvs`` resolves the effective values when its virtual_server block ends, using ``inherit`` below.

Behaviour and messages follow keepalived 2.2.7 (check_api.c, check_http.c, check_misc.c, check_smtp.c,
check_dns.c, check_udp.c, check_ping.c, check_file.c); where a keepalived 1.x or fork spelling is
accepted (nb_sock_retry, nb_get_retry) it is a notice: the fork configurations must load as they are.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from typing import Any, Generic, TypeVar

from supervisor.config import values as v
from supervisor.config.diag import Where
from supervisor.config.model.checkers import (
    DNS_TYPES,
    REGEX_OPTIONS,
    SMTP_DEFAULT_HELO,
    Checker,
    HttpUrl,
    StatusRange,
)
from supervisor.config.parse.table import (
    BFD_UNSUPPORTED,
    Ctx,
    Handler,
    Table,
    bool_opt,
    flag,
    fork_spelling,
    int_,
    needs_block,
    not_applicable,
    rest_words,
    script,
    source,
    timer,
    word,
)
from supervisor.config.tree import Node

T = TypeVar("T")

UINT32_MAX = 2**32 - 1
WEIGHT_MAX = 2**31 - 1
IFNAMSIZ = 16
MIN_TIMER = 0.000001  # keepalived's read_timer minimum of 1 µs for delay_loop / connect_timeout


class Tracked(Generic[T]):
    """A model object seen through the block that fills it: records the fields handlers set.

    Handlers (and the table factories) only use getattr/setattr, so they work on the proxy exactly as
    on the dataclass; ``explicit`` then says what the configuration wrote, which is what keepalived's
    "unset" sentinels (UINT_MAX, -1) say in C.
    """

    __slots__ = ("children", "explicit", "extra", "model")

    def __init__(self, model: T) -> None:
        object.__setattr__(self, "model", model)
        object.__setattr__(self, "explicit", set())
        object.__setattr__(self, "children", [])
        object.__setattr__(self, "extra", {})

    model: T
    explicit: set[str]
    children: list[Any]
    extra: dict[str, Any]

    def __getattr__(self, name: str) -> Any:
        return getattr(object.__getattribute__(self, "model"), name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in Tracked.__slots__:
            object.__setattr__(self, name, value)
            return
        self.explicit.add(name)
        setattr(self.model, name, value)


def notice_once(ctx: Ctx, key: str, where: Where, message: str) -> None:
    """A remark keepalived would not make (fork keyword, pykeepalived leniency): must not change a verdict."""
    ctx.diag.notice_once(key, where, message)


def where_of(src: str) -> Where:
    """The Where back from a model ``source`` string (FILE:LINE)."""
    file, _, line = src.rpartition(":")
    return Where(file, int(line)) if line.isdigit() else Where(src, 0)


# -- common keywords ---------------------------------------------------------------------------------


def _address(field: str, other: str, what: str) -> Handler:
    """connect_ip / bindto: an address whose family must match the other one if that is set."""

    def handle(node: Node, obj: Any, ctx: Ctx) -> None:
        value = v.parse_ip(node, ctx.diag)
        if value is None:
            return
        other_value = getattr(obj, other)
        if other in obj.explicit and other_value is not None and v.ip_address(other_value).version != value.version:
            ctx.diag.error(node.where, f"{node.keyword} address {value} does not match address family of {what} - skipping")
            return
        setattr(obj, field, str(value))

    return handle


def _bind_if(node: Node, obj: Any, ctx: Ctx) -> None:
    name = v.arg(node, ctx.diag, 0, "an interface name")
    if name is None:
        return
    if len(name) > IFNAMSIZ - 1:
        ctx.diag.error(node.where, f"Interface name {name} is too long - ignoring")
        return
    obj.bind_if = name


_RETRY = int_("retry", 0, UINT32_MAX)

COMMON_TIMING: dict[str, Handler] = {
    "retry": _RETRY,
    "delay_before_retry": timer("delay_before_retry", 0.0),
    "warmup": timer("warmup", 0.0),
    "delay_loop": timer("delay_loop", MIN_TIMER),
    "alpha": bool_opt("alpha"),
    "log_all_failures": bool_opt("log_all_failures"),
}

COMMON_CONNECTION: dict[str, Handler] = {
    "connect_ip": _address("connect_ip", "bindto", "bindto"),
    "connect_port": int_("connect_port", 1, 65535),
    "bindto": _address("bindto", "connect_ip", "connect_ip"),
    "bind_port": int_("bind_port", 1, 65535),
    "bind_if": _bind_if,
    "connect_timeout": timer("connect_timeout", MIN_TIMER),
    "fwmark": int_("fwmark", 0, UINT32_MAX),
    # keepalived 1.x / fork spellings of retry, e.g. `nb_sock_retry 2` in the DPVS tutorial.
    "nb_sock_retry": fork_spelling(_RETRY, "nb_sock_retry", "retry"),
    "nb_get_retry": fork_spelling(_RETRY, "nb_get_retry", "retry"),
}

CONNECTION_CHECKER = {**COMMON_CONNECTION, **COMMON_TIMING}


# -- HTTP_GET / SSL_GET ------------------------------------------------------------------------------


def _http_protocol(node: Node, obj: Any, ctx: Ctx) -> None:
    value = v.arg(node, ctx.diag, 0, "an http_protocol version")
    if value is None:
        return
    canonical = {"1.0": "1.0", "1.1": "1.1", "1.0C": "1.0C", "1.0c": "1.0C"}.get(value)
    if canonical is None:
        ctx.diag.error(node.where, f"Invalid http_protocol version {value}")
        return
    obj.http_protocol = canonical


def _digest(node: Node, obj: Any, ctx: Ctx) -> None:
    value = v.arg(node, ctx.diag, 0, "a digest")
    if value is None:
        return
    if obj.digest is not None:
        ctx.diag.error(node.where, f"Digest '{value}' is a duplicate")
        return
    if len(value) != 32:
        ctx.diag.error(node.where, f"digest '{value}' character length should be 32 rather than {len(value)}")
        return
    try:
        int(value, 16)
    except ValueError:
        ctx.diag.error(node.where, f"Unable to interpret hex digits in digest '{value}'")
        return
    obj.digest = value.lower()


def _status_code(node: Node, obj: Any, ctx: Ctx) -> None:
    ranges: list[StatusRange] = list(obj.status_codes)
    for item in node.args:
        low_s, dash, high_s = item.partition("-")
        try:
            low = int(low_s, 10)
            high = int(high_s, 10) if dash else low
        except ValueError:
            low, high = 0, -1
        if not (100 <= low <= 599 and 100 <= high <= 599 and low <= high):
            ctx.diag.error(node.where, f"Invalid HTTP_GET status code '{item}'")
            continue
        ranges.append(StatusRange(low, high))
    obj.status_codes = _merge_ranges(ranges)


def _merge_ranges(ranges: list[StatusRange]) -> list[StatusRange]:
    merged: list[StatusRange] = []
    for r in sorted(ranges, key=lambda r: (r.low, r.high)):
        if merged and r.low <= merged[-1].high + 1:
            merged[-1].high = max(merged[-1].high, r.high)
        else:
            merged.append(StatusRange(r.low, r.high))
    return merged


def _regex(node: Node, obj: Any, ctx: Ctx) -> None:
    if len(node.args) != 1:
        # keepalived only logs this one (not a config error): the regex is not set.
        ctx.diag.warn(node.where, "regex missing or too many fields")
        return
    obj.regex = node.args[0]


def _regex_options(node: Node, obj: Any, ctx: Ctx) -> None:
    options: list[str] = list(obj.regex_options)
    for option in node.args:
        if option not in REGEX_OPTIONS:
            # keepalived skips unknown options without a word; say so, it is almost always a typo.
            notice_once(ctx, f"regex_option:{option}", node.where, f"unknown regex option '{option}' ignored")
            continue
        if option not in options:
            options.append(option)
    obj.regex_options = options


def _regex_offset(name: str) -> Handler:
    def handle(node: Node, obj: Any, ctx: Ctx) -> None:
        if len(node.args) != 1:
            ctx.diag.warn(node.where, f"Missing or too many options for {node.keyword}")
            return
        value = v.parse_int(node, ctx.diag, 0, 0, None)
        if value is not None:
            setattr(obj, name, value)

    return handle


def _regex_stack(node: Node, obj: Any, ctx: Ctx) -> None:
    if len(node.args) != 2:
        ctx.diag.warn(node.where, "regex_stack requires start and max values")
        return
    start = v.parse_int(node, ctx.diag, 0, 0, None)
    top = v.parse_int(node, ctx.diag, 1, 0, None)
    if start is None or top is None:
        return
    if start > top:
        ctx.diag.warn(node.where, "regex stack start cannot exceed max value")
        return
    obj.regex_stack_start, obj.regex_stack_max = start, top


URL = Table(
    "url",
    {
        "path": rest_words("path", "a path"),
        "digest": _digest,
        "status_code": _status_code,
        "virtualhost": rest_words("virtualhost", "a virtualhost name"),
        "regex": _regex,
        "regex_no_match": flag("regex_no_match"),
        "regex_options": _regex_options,
        "regex_min_offset": _regex_offset("regex_min_offset"),
        "regex_max_offset": _regex_offset("regex_max_offset"),
        "regex_stack": _regex_stack,
        "tls_compliant": bool_opt("tls_compliant"),
    },
)


def _url(node: Node, obj: Any, ctx: Ctx) -> None:
    if not needs_block(node, ctx):
        return
    url = HttpUrl(path="", status_codes=[], source=source(node.where))
    URL.apply(node.block(), url, ctx)
    if not url.path:
        ctx.diag.error(node.where, "HTTP/SSL_GET checker url has no path - ignoring")
        return
    if not url.status_codes:
        url.status_codes = [StatusRange(200, 299)]
    regex_params = (
        url.regex_no_match or url.regex_options or url.regex_min_offset or url.regex_max_offset is not None
        or url.regex_stack_start is not None
    )
    if url.regex is None and regex_params:
        ctx.diag.warn(node.where, "regex parameters specified without regex")
        url.regex_no_match, url.regex_options, url.regex_min_offset = False, [], 0
        url.regex_max_offset = url.regex_stack_start = url.regex_stack_max = None
    if url.regex_max_offset is not None and url.regex_min_offset > url.regex_max_offset:
        ctx.diag.warn(
            node.where,
            f"regex min offset {url.regex_min_offset} > regex_max_offset {url.regex_max_offset} - ignoring",
        )
        url.regex_min_offset, url.regex_max_offset = 0, None
    obj.urls.append(url)


HTTP = Table(
    "HTTP_GET",
    {
        **CONNECTION_CHECKER,
        "virtualhost": rest_words("virtualhost", "a virtualhost name"),
        "http_protocol": _http_protocol,
        "enable_sni": bool_opt("enable_sni"),
        "sni_name": word("sni_name"),  # keepalived > 2.2.7; accepted for newer configurations
        "fast_recovery": bool_opt("fast_recovery"),
        "tls_compliant": bool_opt("tls_compliant"),  # keepalived > 2.2.7
        "url": _url,
    },
)


# -- MISC_CHECK --------------------------------------------------------------------------------------


def _misc_timeout(node: Node, obj: Any, ctx: Ctx) -> None:
    value = v.parse_int(node, ctx.diag, 0, 0, UINT32_MAX // 1000000)
    if value is not None:
        # 0 means "not set" in keepalived: the virtual server's delay_loop.
        obj.misc_timeout = float(value) if value else None


def _misc_user(node: Node, obj: Any, ctx: Ctx) -> None:
    if not node.args:
        ctx.diag.error(node.where, "No user specified for misc checker script")
        return
    obj.user = node.args[0]
    if len(node.args) > 1:
        obj.group = node.args[1]


MISC = Table(
    "MISC_CHECK",
    {
        **COMMON_TIMING,
        "misc_path": script("misc_path"),
        "misc_timeout": _misc_timeout,
        "misc_dynamic": flag("misc_dynamic"),
        "user": _misc_user,
    },
)


# -- SMTP_CHECK --------------------------------------------------------------------------------------

_CONNECTION_FIELDS = ("connect_ip", "connect_port", "bindto", "bind_port", "bind_if", "fwmark", "connect_timeout")

SMTP_HOST = Table("host", dict(CONNECTION_CHECKER))


def _smtp_host(node: Node, obj: Any, ctx: Ctx) -> None:
    if not needs_block(node, ctx):
        return
    host: Tracked[Checker] = Tracked(Checker(type="SMTP_CHECK", source=source(node.where)))
    SMTP_HOST.apply(node.block(), host, ctx)
    if not _link_local_ok(host, obj.extra["rs_address"], node, ctx):
        return
    obj.children.append(host)


SMTP = Table("SMTP_CHECK", {**CONNECTION_CHECKER, "helo_name": word("helo_name"), "host": _smtp_host})


# -- DNS_CHECK ---------------------------------------------------------------------------------------


def _dns_type(node: Node, obj: Any, ctx: Ctx) -> None:
    value = v.arg(node, ctx.diag, 0, "a DNS type")
    if value is None:
        return
    if value.upper() not in DNS_TYPES:
        ctx.diag.error(node.where, f"Unknown DNS check type {value} - ignoring")
        return
    obj.dns_type = value.upper()


def _dns_name(node: Node, obj: Any, ctx: Ctx) -> None:
    value = v.arg(node, ctx.diag, 0, "a DNS name")
    if value is None:
        return
    if obj.dns_name is not None:
        ctx.diag.error(node.where, "DNS_CHECK name already specified - ignoring")
        return
    if (value.startswith(".") and value != ".") or ".." in value:
        ctx.diag.error(node.where, f"DNS_CHECK name '{value}' has empty label - ignoring")
        return
    obj.dns_name = value


DNS = Table("DNS_CHECK", {**CONNECTION_CHECKER, "type": _dns_type, "name": _dns_name})


# -- UDP_CHECK ---------------------------------------------------------------------------------------


def parse_hex(text: str, wildcards: bool) -> str | None:
    """keepalived's read_hex_str: hex digits, spaces between octets allowed; a lone digit before a
    space is one octet. Returns two lowercase digits per octet (x for a wildcard nibble), or None."""
    out: list[str] = []
    i, n = 0, len(text)
    valid = "0123456789abcdef" + ("x" if wildcards else "")
    while True:
        while i < n and text[i] in " \t":
            i += 1
        if i >= n:
            break
        first = text[i].lower()
        i += 1
        if first not in valid:
            return None
        if i < n and text[i] != " " and text[i] != "\t":
            second = text[i].lower()
            i += 1
            if second not in valid:
                return None
            out.append(first + second)
        else:
            out.append("0" + first)
    return "".join(out) or None


def _payload(node: Node, obj: Any, ctx: Ctx) -> None:
    if not node.args:
        ctx.diag.error(node.where, "UDP_CHECK payload requires a payload")
        return
    value = parse_hex(" ".join(node.args), wildcards=False)
    if value is None:
        ctx.diag.error(node.where, "Invalid hex string for UDP_CHECK payload")
        return
    obj.payload = value


def _require_reply(node: Node, obj: Any, ctx: Ctx) -> None:
    obj.require_reply = True
    if not node.args:
        return
    value = parse_hex(" ".join(node.args), wildcards=True)
    if value is None:
        ctx.diag.error(node.where, "Invalid hex string for UDP_CHECK reply")
        return
    obj.reply = value


UDP = Table(
    "UDP_CHECK",
    {
        **CONNECTION_CHECKER,
        "payload": _payload,
        "require_reply": _require_reply,
        "min_reply_length": int_("min_reply_length", 0, 65535),
        "max_reply_length": int_("max_reply_length", 0, 65535),
    },
)

TCP = Table("TCP_CHECK", dict(CONNECTION_CHECKER))
PING = Table("PING_CHECK", dict(CONNECTION_CHECKER))


# -- FILE_CHECK --------------------------------------------------------------------------------------


def _file_weight(node: Node, obj: Any, ctx: Ctx) -> None:
    value = v.parse_int(node, ctx.diag, 0, -WEIGHT_MAX, WEIGHT_MAX, "a weight")
    if value is None:
        return
    reverse = False
    if len(node.args) >= 2:
        if node.args[1] not in ("reverse", "noreverse"):
            ctx.diag.error(node.where, f"unknown track file weight option {node.args[1]} - ignoring")
            return
        reverse = node.args[1] == "reverse"
    obj.track_file_weight = value
    obj.track_file_reverse = reverse


FILE = Table("FILE_CHECK", {"track_file": word("track_file"), "weight": _file_weight})


# -- the checker keywords ----------------------------------------------------------------------------

# Per type: its table, default retry, default delay_before_retry (None: its delay_loop), and whether it
# connects to something (connect_ip/connect_port default to the real server).
_TYPES: dict[str, tuple[Table, int, float | None, bool]] = {
    "HTTP_GET": (HTTP, 1, 3.0, True),
    "SSL_GET": (Table("SSL_GET", HTTP.handlers), 1, 3.0, True),
    "TCP_CHECK": (TCP, 1, 1.0, True),
    "MISC_CHECK": (MISC, 0, 1.0, False),
    "SMTP_CHECK": (SMTP, 1, 1.0, True),
    "DNS_CHECK": (DNS, 3, None, True),
    "UDP_CHECK": (UDP, 1, 1.0, True),
    "PING_CHECK": (PING, 1, 1.0, True),
    "FILE_CHECK": (FILE, 1, 1.0, False),
}


def _link_local_ok(ch: Tracked[Checker], rs_address: str, node: Node, ctx: Ctx) -> bool:
    target = ch.model.connect_ip if "connect_ip" in ch.explicit else rs_address
    try:
        addr = v.ip_address(target) if target else None
    except ValueError:
        addr = None
    if isinstance(addr, ipaddress.IPv6Address) and addr.is_link_local and not ch.model.bind_if:
        ctx.diag.error(node.where, f"Checker link local address {target} requires a bind_if")
        return False
    return True


def _checker(kind: str) -> Handler:
    table, default_retry, default_dbr, connects = _TYPES[kind]

    def handle(node: Node, rs: Any, ctx: Ctx) -> None:
        """rs is the Tracked real server; the parsed checker is queued on rs.children."""
        if not needs_block(node, ctx):
            return
        ch: Tracked[Checker] = Tracked(Checker(type=kind, source=source(node.where)))
        ch.extra.update(default_retry=default_retry, default_dbr=default_dbr, connects=connects,
                        rs_address=rs.model.address)
        if kind in ("HTTP_GET", "SSL_GET"):
            ch.model.http_protocol = "1.0"
        table.apply(node.block(), ch, ctx)
        if not _finish(ch, node, rs, ctx):
            return
        rs.children.append(ch)
        if kind == "SMTP_CHECK":
            _expand_smtp_hosts(ch, node, rs, ctx)

    return handle


def _finish(ch: Tracked[Checker], node: Node, rs: Any, ctx: Ctx) -> bool:
    """The end of a checker block: keepalived's per-type end handlers. False: drop the checker."""
    model = ch.model
    if model.type in ("HTTP_GET", "SSL_GET") and not model.urls:
        ctx.diag.error(node.where, "HTTP/SSL_GET checker has no urls specified - ignoring")
        return False
    if model.type == "MISC_CHECK":
        if model.misc_path is None:
            ctx.diag.error(node.where, "No script path has been specified for MISC_CHECKER - skipping")
            return False
    if model.type == "FILE_CHECK" and model.track_file is None:
        ctx.diag.error(node.where, "FILE_CHECK has no track_file specified - ignoring")
        return False
    if model.type == "SMTP_CHECK" and model.helo_name is None:
        model.helo_name = SMTP_DEFAULT_HELO
    if model.type == "DNS_CHECK":
        model.dns_type = model.dns_type or "SOA"
        model.dns_name = model.dns_name or "."
    if model.type == "UDP_CHECK" and model.min_reply_length > model.max_reply_length:
        ctx.diag.error(
            node.where,
            f"UDP_CHECK min_reply length {model.min_reply_length} > max_reply_length "
            f"{model.max_reply_length} - will always fail",
        )
    if ch.extra["connects"] and not _link_local_ok(ch, rs.model.address, node, ctx):
        return False
    return True


def _expand_smtp_hosts(ch: Tracked[Checker], node: Node, rs: Any, ctx: Ctx) -> None:
    """The deprecated SMTP_CHECK `host { … }` form: one checker per host (check_smtp.c)."""
    hosts: list[Tracked[Checker]] = ch.children
    if not hosts:
        return
    notice_once(ctx, "smtp-host", node.where,
                "The SMTP_CHECK host block is deprecated. Please define additional checkers.")
    own_connection = any(name in ch.explicit for name in _CONNECTION_FIELDS)
    if not own_connection:
        # No connection keyword at the top: the first host is this checker's connection.
        _take_connection(ch, hosts[0])
        hosts = hosts[1:]
    for host in hosts:
        copy: Tracked[Checker] = Tracked(dataclasses.replace(ch.model, source=host.model.source))
        copy.explicit.update(ch.explicit - set(_CONNECTION_FIELDS))
        copy.extra.update(ch.extra)
        _take_connection(copy, host)
        rs.children.append(copy)


def _take_connection(target: Tracked[Checker], host: Tracked[Checker]) -> None:
    for name in _CONNECTION_FIELDS:
        if name in host.explicit:
            setattr(target, name, getattr(host.model, name))
        else:
            target.explicit.discard(name)
            object.__setattr__(target.model, name, getattr(Checker(type="SMTP_CHECK"), name))


CHECKER_HANDLERS: dict[str, Handler] = {kind: _checker(kind) for kind in _TYPES}
CHECKER_HANDLERS["BFD_CHECK"] = not_applicable(BFD_UNSUPPORTED)


def inherit(ch: Tracked[Checker], rs_address: str, rs_port: int, rs: Any, vs: Any) -> None:
    """Effective timing and connection values for a checker, from its real and virtual server.

    ``rs`` and ``vs`` are the resolved RealServer and VirtualServer (their own inheritance done).
    """
    m, ex = ch.model, ch.explicit
    if "alpha" not in ex:
        m.alpha = rs.alpha
    if "retry" not in ex:
        m.retry = rs.retry if rs.retry is not None else ch.extra["default_retry"]
    if "connect_timeout" not in ex:
        m.connect_timeout = rs.connect_timeout
    if "delay_loop" not in ex:
        m.delay_loop = rs.delay_loop
    if "warmup" not in ex:
        m.warmup = rs.warmup if rs.warmup is not None else m.delay_loop
    if "delay_before_retry" not in ex:
        if rs.delay_before_retry is not None:
            m.delay_before_retry = rs.delay_before_retry
        else:
            default = ch.extra["default_dbr"]
            m.delay_before_retry = default if default is not None else m.delay_loop
    if m.type in ("HTTP_GET", "SSL_GET") and "virtualhost" not in ex:
        m.virtualhost = rs.virtualhost
    if m.type == "MISC_CHECK" and m.misc_timeout is None:
        m.misc_timeout = vs.delay_loop
    if ch.extra["connects"]:
        if "connect_ip" not in ex:
            m.connect_ip = rs_address
        if "connect_port" not in ex:
            m.connect_port = rs_port

