"""Health checkers: every type, keepalived 2.2.7's per-type defaults, inheritance and errors."""

from __future__ import annotations

from supervisor.config.diag import Severity
from supervisor.config.load import LoadResult, load_text
from supervisor.config.model.checkers import Checker, StatusRange


def load(checkers: str, vs_extra: str = "", rs_extra: str = "", before: str = "") -> LoadResult:
    text = (
        f"{before}virtual_server 192.0.2.100 80 {{\n lb_algo rr\n lb_kind NAT\n protocol TCP\n{vs_extra}\n"
        f" real_server 192.0.2.1 80 {{\n{rs_extra}\n{checkers}\n }}\n}}\n"
    )
    return load_text(text, name="k.conf")


def checkers(r: LoadResult) -> list[Checker]:
    assert r.config is not None
    return r.config.virtual_servers[0].real_servers[0].checkers


def problems(r: LoadResult, severity: Severity | None = None) -> list[str]:
    return [str(p) for p in r.diag if severity is None or p.severity is severity]


def test_http_get() -> None:
    r = load("""HTTP_GET {
  url {
    path /health
    digest 1BCB6BAACC4338D8FE8D7587E3A27A7C
    status_code 200 301-302 300
    virtualhost a.example
    regex "^ok$"
    regex_options caseless
  }
  url {
    path /
  }
  http_protocol 1.0c
  fast_recovery
}""")
    assert problems(r) == []
    (c,) = checkers(r)
    assert (c.type, c.http_protocol, c.fast_recovery, c.retry, c.delay_before_retry) == ("HTTP_GET", "1.0C", True, 1, 3.0)
    u1, u2 = c.urls
    assert (u1.path, u1.digest, u1.virtualhost, u1.regex, u1.regex_options) == (
        "/health", "1bcb6baacc4338d8fe8d7587e3a27a7c", "a.example", "^ok$", ["caseless"]
    )
    assert u1.status_codes == [StatusRange(200, 200), StatusRange(300, 302)]
    assert u2.status_codes == [StatusRange(200, 299)] and u2.accepts(204) and not u2.accepts(301)


def test_http_errors() -> None:
    r = load("""HTTP_GET {
  url {
    digest 123
    status_code 99 600 abc
  }
  http_protocol 2
}
SSL_GET {
}""")
    assert checkers(r) == []
    assert problems(r, Severity.ERROR) == [
        "k.conf:10: digest '123' character length should be 32 rather than 3",
        "k.conf:11: Invalid HTTP_GET status code '99'",
        "k.conf:11: Invalid HTTP_GET status code '600'",
        "k.conf:11: Invalid HTTP_GET status code 'abc'",
        "k.conf:9: HTTP/SSL_GET checker url has no path - ignoring",
        "k.conf:13: Invalid http_protocol version 2",
        "k.conf:8: HTTP/SSL_GET checker has no urls specified - ignoring",
        "k.conf:15: HTTP/SSL_GET checker has no urls specified - ignoring",
    ]


def test_ssl_get_and_virtualhost_inheritance() -> None:
    r = load("SSL_GET {\n url {\n path /\n }\n enable_sni\n sni_name s.example\n tls_compliant\n}",
             vs_extra="virtualhost vs.example")
    (c,) = checkers(r)
    assert (c.type, c.enable_sni, c.sni_name, c.tls_compliant, c.virtualhost) == (
        "SSL_GET", True, "s.example", True, "vs.example"
    )


def test_inheritance_checker_real_server_virtual_server() -> None:
    r = load(
        "TCP_CHECK {\n retry 5\n}\nTCP_CHECK {\n delay_loop 4\n connect_ip 192.0.2.50\n connect_port 81\n}",
        vs_extra="delay_loop 20\n retry 2\n warmup 7\n alpha",
        rs_extra="connect_timeout 9\n delay_before_retry 6",
    )
    a, b = checkers(r)
    assert (a.retry, a.delay_loop, a.connect_timeout, a.warmup, a.delay_before_retry, a.alpha) == (5, 20.0, 9.0, 7.0, 6.0, True)
    assert (b.retry, b.delay_loop, b.connect_ip, b.connect_port) == (2, 4.0, "192.0.2.50", 81)


def test_per_type_defaults() -> None:
    r = load("MISC_CHECK {\n misc_path \"/no/such/check arg\"\n misc_dynamic\n user nobody nogroup\n}\n"
             "DNS_CHECK {\n}\nHTTP_GET {\n url {\n path /\n }\n}\nPING_CHECK {\n}",
             vs_extra="delay_loop 12")
    misc, dns, http, ping = checkers(r)
    assert (misc.retry, misc.delay_before_retry, misc.misc_timeout, misc.connect_ip) == (0, 1.0, 12.0, None)
    assert (misc.misc_path, misc.misc_dynamic, misc.user, misc.group) == ('"/no/such/check arg"', True, "nobody", "nogroup")
    assert (dns.retry, dns.delay_before_retry, dns.dns_type, dns.dns_name) == (3, 12.0, "SOA", ".")
    assert (http.retry, http.delay_before_retry, http.warmup) == (1, 3.0, 12.0)
    assert (ping.type, ping.connect_ip, ping.retry) == ("PING_CHECK", "192.0.2.1", 1)


def test_misc_check_requires_a_path() -> None:
    r = load("MISC_CHECK {\n misc_timeout 5\n}")
    assert checkers(r) == []
    assert problems(r) == ["k.conf:8: No script path has been specified for MISC_CHECKER - skipping"]


def test_smtp_check_and_its_old_host_blocks() -> None:
    r = load("SMTP_CHECK {\n helo_name me.example\n host {\n connect_ip 192.0.2.7\n connect_port 25\n }\n"
             " host {\n connect_ip 192.0.2.8\n }\n}\nSMTP_CHECK {\n}")
    a, b, c = checkers(r)
    assert [(x.connect_ip, x.connect_port, x.helo_name) for x in (a, b, c)] == [
        ("192.0.2.7", 25, "me.example"), ("192.0.2.8", 80, "me.example"), ("192.0.2.1", 80, "smtpchecker.keepalived.org")
    ]
    assert problems(r, Severity.NOTICE) == [
        "k.conf:8: warning: The SMTP_CHECK host block is deprecated. Please define additional checkers."
    ]


def test_dns_check() -> None:
    r = load("DNS_CHECK {\n type aaaa\n name example.com\n}\nDNS_CHECK {\n type BOGUS\n name a..b\n}")
    a, b = checkers(r)
    assert (a.dns_type, a.dns_name) == ("AAAA", "example.com")
    assert (b.dns_type, b.dns_name) == ("SOA", ".")
    assert problems(r) == [
        "k.conf:13: Unknown DNS check type BOGUS - ignoring",
        "k.conf:14: DNS_CHECK name 'a..b' has empty label - ignoring",
    ]


def test_udp_check() -> None:
    r = load("UDP_CHECK {\n payload 0a0B 1\n require_reply 0x 1X\n min_reply_length 4\n max_reply_length 2\n}\n"
             "UDP_CHECK {\n payload zz\n}")
    a, b = checkers(r)
    assert (a.payload, a.require_reply, a.reply, a.min_reply_length, a.max_reply_length) == ("0a0b01", True, "0x1x", 4, 2)
    assert (b.payload, b.require_reply, b.min_reply_length, b.max_reply_length) == (None, False, 0, 255)
    assert problems(r) == [
        "k.conf:8: UDP_CHECK min_reply length 4 > max_reply_length 2 - will always fail",
        "k.conf:15: Invalid hex string for UDP_CHECK payload",
    ]


def test_file_check_uses_track_file_blocks() -> None:
    before = "track_file tf1 {\n file /run/tf1\n weight -5\n}\n"
    r = load("FILE_CHECK {\n track_file tf1\n}\nFILE_CHECK {\n track_file tf1\n weight 3 reverse\n}\n"
             "FILE_CHECK {\n track_file nosuch\n}\nFILE_CHECK {\n}", before=before)
    a, b = checkers(r)
    assert (a.track_file, a.track_file_weight, a.track_file_reverse) == ("tf1", -5, False)
    assert (b.track_file_weight, b.track_file_reverse) == (3, True)
    assert problems(r, Severity.ERROR) == [
        "k.conf:22: FILE_CHECK has no track_file specified - ignoring",
        "k.conf:19: track_file nosuch not found",
    ]


def test_bfd_check_is_accepted_with_one_notice() -> None:
    r = load("BFD_CHECK {\n name bfd1\n}\nBFD_CHECK {\n name bfd2\n}\nTCP_CHECK {\n}")
    assert [c.type for c in checkers(r)] == ["TCP_CHECK"]
    assert problems(r) == ["k.conf:8: warning: 'BFD_CHECK' has no effect here: BFD is not supported by pykeepalived"]


def test_common_keyword_errors() -> None:
    r = load("TCP_CHECK {\n connect_port 0\n bindto 2001:db8::1\n connect_ip 192.0.2.9\n bind_if averyveryverylongname\n"
             " nb_sock_retry 4\n bogus_kw\n}\nTCP_CHECK\nPING_CHECK {\n connect_ip fe80::1\n}")
    (c,) = checkers(r)
    assert (c.connect_port, c.bindto, c.connect_ip, c.bind_if, c.retry) == (80, "2001:db8::1", "192.0.2.1", None, 4)
    assert problems(r) == [
        "k.conf:9: connect_port: value 0 out of range [1, 65535]",
        "k.conf:11: connect_ip address 192.0.2.9 does not match address family of bindto - skipping",
        "k.conf:12: Interface name averyveryverylongname is too long - ignoring",
        "k.conf:13: warning: 'nb_sock_retry' accepted as keepalived 2's 'retry'",
        "k.conf:14: unknown keyword 'bogus_kw' in TCP_CHECK",
        "k.conf:16: TCP_CHECK: missing '{' to open its block",
        "k.conf:17: Checker link local address fe80::1 requires a bind_if",
    ]


def test_log_all_failures_follows_global_defs() -> None:
    r = load("TCP_CHECK {\n}", before="global_defs {\n checker_log_all_failures\n}\n")
    assert checkers(r)[0].log_all_failures is True
