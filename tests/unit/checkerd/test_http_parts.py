"""Pure parts of HTTP_GET and genhash: request bytes, header rules, hex dump, streamed digest and regex."""

from __future__ import annotations

import hashlib
import io
import re

from checkerd.checks.http import (
    ResponseReader,
    build_request,
    extract_content_length,
    extract_status_code,
    hex_dump,
)
from checkerd.genhash import parse


def test_request_line_and_headers() -> None:
    assert build_request("/x", "192.0.2.2", 80, None, "1.0") == (
        b"GET /x HTTP/1.0\r\nUser-Agent: KeepAliveClient\r\nHost: 192.0.2.2:80\r\n\r\n")
    assert build_request("/", "fd00::2", 8080, None, "1.1") == (
        b"GET / HTTP/1.1\r\nUser-Agent: KeepAliveClient\r\nConnection: close\r\nHost: [fd00::2]:8080\r\n\r\n")
    assert build_request("/", "fd00::2", 8080, "v.example", "1.0C") == (
        b"GET / HTTP/1.0\r\nUser-Agent: KeepAliveClient\r\nConnection: close\r\nHost: v.example\r\n\r\n")


def test_status_code_rules() -> None:
    assert extract_status_code(b"HTTP/1.1 200 OK\r\n") == 200
    assert extract_status_code(b"HTTP/1.1 200\r\n\r\n") == 0  # no reason phrase: keepalived reads 0
    assert extract_status_code(b"HTTP/1.1  200 OK\r\n") == 0
    assert extract_status_code(b"garbage\r\n") == 0
    assert extract_status_code(b"HTTP/1.1 2x0 OK\r\n") == 0


def test_content_length_rules() -> None:
    assert extract_content_length(b"HTTP/1.0 200 OK\r\nContent-Length: 12\r\n\r\n") == 12
    assert extract_content_length(b"HTTP/1.0 200 OK\r\ncontent-length: 12\r\n\r\n") is None
    assert extract_content_length(b"HTTP/1.0 200 OK\r\nContent-Length: 12x\r\n\r\n") is None
    assert extract_content_length(b"HTTP/1.0 200 OK\r\nContent-Length:\r\n\r\n") == 0
    assert extract_content_length(b"HTTP/1.0 200 OK\r\n\0Content-Length: 3\r\n\r\n") is None


def test_hex_dump_format() -> None:
    assert hex_dump(b"hello\n") == "0000  68 65 6c 6c 6f 0a       -                           hello.          \n"
    two = hex_dump(bytes(range(17)))
    assert two.splitlines()[1].startswith("0016  10   ")
    assert hex_dump(b"") == ""


def test_body_digest_streams_and_stops_at_content_length() -> None:
    r = ResponseReader()
    body = b"a" * 10000
    r.feed(b"HTTP/1.0 200 OK\r\nContent-Length: 9000\r\n\r\n" + body[:100])
    for i in range(100, len(body), 777):
        r.feed(body[i:i + 777])
    assert r.status == 200 and r.content_length == 9000 and r.rx_bytes == 10000
    assert r.digest() == hashlib.md5(body[:9000]).digest()


def test_header_larger_than_keepalived_buffer_is_no_data() -> None:
    r = ResponseReader()
    while not r.full:
        r.feed(b"X" * r.read_size())
    assert r.header is None


def test_regex_across_reads_and_offsets() -> None:
    r = ResponseReader(regex=re.compile(b"needle"))
    r.feed(b"HTTP/1.0 200 OK\r\n\r\n" + b"x" * 5000 + b"nee")
    r.feed(b"dle" + b"y" * 10)
    assert r.regex_matched
    r = ResponseReader(regex=re.compile(b"needle"), regex_max_offset=10)
    r.feed(b"HTTP/1.0 200 OK\r\n\r\n" + b"x" * 20 + b"needle")
    assert not r.regex_matched
    r = ResponseReader(regex=re.compile(b"needle"), regex_min_offset=5)
    r.feed(b"HTTP/1.0 200 OK\r\n\r\nneedle-----needle")
    assert r.regex_matched


def test_genhash_options() -> None:
    err = io.StringIO()
    o = parse(["genhash", "-s", "192.0.2.1", "-p", "80", "-u", "/", "-P", "1.0c", "-t", "3", "-V", "h", "-S"], err)
    assert o is not None and (o.protocol, o.timeout, o.vhost, o.ssl) == ("1.0C", 3.0, "h", True)
    assert parse(["genhash", "-s", "192.0.2.1", "-p", "80"], err) is None
    assert parse(["genhash", "-s", "h.example", "-p", "80", "-u", "/"], err) is None
    assert "server should be an IP, not h.example" in err.getvalue()
    assert parse(["genhash", "--bogus"], err) is None and "Unknown option --bogus" in err.getvalue()
