"""pygenhash against Debian's keepalived genhash, on the same servers, in a namespace.

Both run one after the other on the same URL; stdout, stderr and the exit code must be identical, and
so must the request bytes the server received. Pages: empty, small, large, chunked, without
Content-Length, with a Content-Length shorter than the body, error statuses, a header that never ends,
a response cut short, TLS, HTTP/1.0, 1.0C and 1.1, virtual hosts, usage errors, refused and timed out.
"""

from __future__ import annotations

import hashlib
import re
import shutil
from pathlib import Path

import pytest

from tests.integration.checkerd.conftest import PORTS, ROOT, Lab

pytestmark = [pytest.mark.root, pytest.mark.keepalived]

PYGENHASH = str(ROOT / ".venv" / "bin" / "pygenhash")
GENHASH = shutil.which("genhash") or "/usr/bin/genhash"


def both(lab: Lab, *args: str) -> tuple[tuple[int, str, str], tuple[int, str, str]]:
    theirs = lab.ns.run([GENHASH, *args], check=False, timeout=60)
    ours = lab.ns.run([PYGENHASH, *args], check=False, timeout=60)
    # The usage names the program as invoked (argv[0]), as keepalived's does.
    return ((theirs.returncode, theirs.stdout, theirs.stderr.replace(GENHASH, "GENHASH")),
            (ours.returncode, ours.stdout, ours.stderr.replace(PYGENHASH, "GENHASH")))


PAGES = ["/cl/0", "/cl/5", "/cl/3000", "/cl/200000", "/nocl/0", "/nocl/70000", "/chunked/25000",
         "/clshort/100", "/status/404", "/status/500", "/noheaderend", "/midclose"]


@pytest.mark.parametrize("proto", ["1.0", "1.0c", "1.1"])
def test_same_digest_as_keepalived(lab: Lab, proto: str) -> None:
    for page in PAGES:
        theirs, ours = both(lab, "-s", lab.addr, "-p", str(PORTS["http"]), "-u", page, "-P", proto)
        assert ours == theirs, page
    # Sanity: a real digest came out (the test cannot pass on two empty outputs).
    assert re.fullmatch(r"[0-9a-f]{32}\n", ours[1]) or "no data" in ours[2]
    _, ours = both(lab, "-s", lab.addr, "-p", str(PORTS["http"]), "-u", "/cl/5", "-P", proto)
    assert ours[1] == hashlib.md5(b" !\"#$").hexdigest() + "\n"


def test_tls_same_digest(lab: Lab) -> None:
    for page in ("/cl/0", "/cl/1000", "/chunked/9000", "/nocl/50000"):
        theirs, ours = both(lab, "-S", "-s", lab.addr, "-p", str(PORTS["tls"]), "-u", page)
        assert ours == theirs, page
        assert re.fullmatch(r"[0-9a-f]{32}\n", ours[1]), ours
    theirs, ours = both(lab, "-S", "-I", "-V", "rs.example", "-s", lab.addr, "-p", str(PORTS["tls"]), "-u", "/cl/7")
    assert ours == theirs


def test_same_request_bytes(lab: Lab) -> None:
    for extra in ([], ["-P", "1.1"], ["-P", "1.0c", "-V", "www.example"], ["-V", "v.example", "-P", "1.0"]):
        before = len(lab.requests())
        both(lab, "-s", lab.addr, "-p", str(PORTS["http"]), "-u", "/cl/1?x=1", *extra)
        reqs = lab.requests()[before:]
        assert len(reqs) == 2 and reqs[0] == reqs[1], reqs
        assert reqs[0].startswith(b"GET /cl/1?x=1 HTTP/1.") and b"User-Agent: KeepAliveClient\r\n" in reqs[0]


def test_verbose_output(lab: Lab) -> None:
    for page in ("/cl/100", "/cl/0", "/status/404"):
        theirs, ours = both(lab, "-v", "-s", lab.addr, "-p", str(PORTS["http"]), "-u", page)
        mask = re.compile(r"= \d+ usecs")
        assert mask.sub("= N usecs", ours[1]) == mask.sub("= N usecs", theirs[1]), page
        assert (ours[0], ours[2]) == (theirs[0], theirs[2])
        assert "HTTP Header Ascii Buffer" in ours[1]


def test_failures_and_usage(lab: Lab) -> None:
    cases = [
        ("-s", lab.addr, "-p", "1", "-u", "/"),  # refused
        ("-s", lab.addr, "-p", str(PORTS["http"]), "-u", "/hang", "-t", "1"),  # read timeout
        ("-s", lab.addr, "-p", str(PORTS["http"])),  # no url
        ("-s", "not-an-ip", "-p", "80", "-u", "/"),
        ("-s", lab.addr, "-p", "70000", "-u", "/"),
        ("-s", lab.addr, "-p", "80", "-u", "/", "-P", "2.0"),
        ("-s", lab.addr, "-p", "80", "-u", "/", "-t", "x"),
        ("-h",),
        ("-s", lab.addr, "-p", "80", "-u", "/", "extra"),
    ]
    for args in cases:
        theirs, ours = both(lab, *args)
        assert ours == theirs, args


def test_pygenhash_is_installed() -> None:
    assert Path(PYGENHASH).exists()
