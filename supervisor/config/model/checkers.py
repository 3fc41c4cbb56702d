"""Health checkers of a real server: one dataclass with a ``type`` discriminator.

A single class (rather than one per checker type) keeps the model a plain tree of dataclasses that
round-trips through TOML by type hints alone; fields that belong to one type stay at their default
(or None, absent from TOML) for the others.

Timing and retry fields hold effective values once ``parse.lvs.validate`` has run, resolved the way
keepalived 2.2.7 does (``check_data.c`` validate_check_config): the checker's own keyword, else the
real server's, else the virtual server's, else the checker type's default:

* retry: 1; MISC_CHECK 0; DNS_CHECK 3
* delay_before_retry: 1 s; HTTP_GET/SSL_GET 3 s; DNS_CHECK its delay_loop
* warmup: its delay_loop
* connect_timeout 5 s, delay_loop 60 s (the virtual server's defaults)

``connect_ip``/``connect_port`` default to the real server's address and port; MISC_CHECK and
FILE_CHECK make no connection and leave them unset.
"""

from __future__ import annotations

from dataclasses import dataclass, field

CHECKER_TYPES = (
    "HTTP_GET",
    "SSL_GET",
    "TCP_CHECK",
    "MISC_CHECK",
    "SMTP_CHECK",
    "DNS_CHECK",
    "UDP_CHECK",
    "PING_CHECK",
    "FILE_CHECK",
)
DNS_TYPES = ("A", "NS", "CNAME", "SOA", "MX", "TXT", "AAAA", "RRSIG", "DNSKEY")
HTTP_PROTOCOLS = ("1.0", "1.0C", "1.1")
SMTP_DEFAULT_HELO = "smtpchecker.keepalived.org"
# PCRE2 compile options keepalived accepts in regex_options.
REGEX_OPTIONS = (
    "allow_empty_class", "alt_bsux", "auto_callout", "caseless", "dollar_endonly", "dotall", "dupnames",
    "extended", "firstline", "match_unset_backref", "multiline", "never_ucp", "never_utf",
    "no_auto_capture", "no_auto_possess", "no_dotstar_anchor", "no_start_optimize", "ucp", "ungreedy",
    "utf",
)


@dataclass
class StatusRange:
    """Accepted HTTP status codes low … high inclusive."""

    low: int
    high: int


def default_status_codes() -> list[StatusRange]:
    return [StatusRange(200, 299)]


@dataclass
class HttpUrl:
    path: str
    digest: str | None = None  # MD5 of the body, 32 lowercase hex digits
    status_codes: list[StatusRange] = field(default_factory=default_status_codes)
    virtualhost: str | None = None  # None: the checker's
    regex: str | None = None
    regex_no_match: bool = False
    regex_options: list[str] = field(default_factory=list)
    regex_min_offset: int = 0
    regex_max_offset: int | None = None  # as written: the last offset at which a match may start
    regex_stack_start: int | None = None
    regex_stack_max: int | None = None
    tls_compliant: bool = False
    source: str = ""

    def accepts(self, status: int) -> bool:
        return any(r.low <= status <= r.high for r in self.status_codes)


@dataclass
class Checker:
    type: str  # one of CHECKER_TYPES
    # Connection (all but MISC_CHECK and FILE_CHECK)
    connect_ip: str | None = None
    connect_port: int = 0
    bindto: str | None = None
    bind_port: int = 0
    bind_if: str | None = None
    fwmark: int = 0
    connect_timeout: float = 5.0
    # Timing (effective)
    retry: int = 1
    delay_before_retry: float = 1.0
    warmup: float = 60.0
    delay_loop: float = 60.0
    alpha: bool = False
    log_all_failures: bool = False
    # HTTP_GET / SSL_GET
    urls: list[HttpUrl] = field(default_factory=list)
    http_protocol: str | None = None  # 1.0 | 1.0C | 1.1 (set to "1.0" for HTTP/SSL checkers)
    virtualhost: str | None = None  # effective: the checker's, else the real server's, else the VS's
    enable_sni: bool = False
    sni_name: str | None = None
    fast_recovery: bool = False
    tls_compliant: bool = False
    # MISC_CHECK
    misc_path: str | None = None  # the command line as written
    misc_timeout: float | None = None  # effective: the virtual server's delay_loop when not given
    misc_dynamic: bool = False
    user: str | None = None
    group: str | None = None
    # SMTP_CHECK
    helo_name: str | None = None  # SMTP_DEFAULT_HELO when not given
    # DNS_CHECK
    dns_type: str | None = None  # SOA when not given
    dns_name: str | None = None  # "." when not given
    # UDP_CHECK: hex strings, two digits per octet; in `reply`, x is a wildcard nibble
    payload: str | None = None
    require_reply: bool = False
    reply: str | None = None
    min_reply_length: int = 0
    max_reply_length: int = 255
    # FILE_CHECK
    track_file: str | None = None
    track_file_weight: int | None = None  # effective: the track_file block's weight when not given
    track_file_reverse: bool = False
    source: str = ""
