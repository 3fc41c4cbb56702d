"""IPv6 real servers and the connection options (bindto, bind_if, fwmark) in a namespace.

The witnesses are independent of the checker: an nftables table in the namespace counts packets by
source address and rejects packets by mark, and python's http.server serves on an fd00:: address.
"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from tests.integration.checkerd.conftest import PORTS, Lab
from tests.integration.checkerd.test_checkers import Driver, rs, vs

pytestmark = [pytest.mark.root]

A6 = "fd00::10"
B = "192.0.2.11"
HTTP6 = 8086

NFT = f"""
table inet cktest {{
  chain out {{
    type filter hook output priority 0; policy accept;
    meta mark 7 tcp dport {PORTS['http']} reject with tcp reset
    ip saddr {B} tcp dport {PORTS['http']} counter
  }}
}}
"""


def test_ipv6_servers_and_bind_options(lab: Lab) -> None:
    lab.ns.add_address("dummy0", f"{A6}/64")
    lab.ns.add_address("dummy0", f"{B}/24")
    srv = lab.ns.popen([sys.executable, "-m", "http.server", "--bind", A6, "--directory", str(lab.dir),
                        str(HTTP6)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    lab.ns.run(["nft", "-f", "-"], input=NFT)
    d = None
    try:
        deadline = time.monotonic() + 10  # bounded wait for http.server to listen
        while time.monotonic() < deadline and str(HTTP6) not in lab.ns.run(["ss", "-ltnH"]).stdout:
            time.sleep(0.1)
        v6 = vs(1, rs(HTTP6, "HTTP_GET {\n url {\n path /\n status_code 200\n }\n }\n TCP_CHECK {\n }", addr=A6) +
                rs(9, "TCP_CHECK {\n}", addr=A6))
        conf = (v6.replace("203.0.113.1 1 {", "fd00::1 80 {") +
                vs(2, rs(PORTS["http"], f"TCP_CHECK {{\n bindto {B}\n }}")) +
                vs(3, rs(PORTS["http"], "TCP_CHECK {\n bindto 192.0.2.99\n }")) +
                vs(4, rs(PORTS["http"], "TCP_CHECK {\n bind_if dummy0\n }")) +
                vs(5, rs(PORTS["http"], "TCP_CHECK {\n bind_if nosuch0\n }")) +
                vs(6, rs(PORTS["http"], "TCP_CHECK {\n fwmark 7\n }")) +
                vs(7, rs(PORTS["http"], "HTTP_GET {\n fwmark 7\n url {\n path /mode\n }\n }")))
        d = Driver(lab, conf)
        # IPv6: HTTP_GET and TCP_CHECK up; a closed port down with the refusal; keys use the address as is
        _, data = d.wait(f"fd00::1:80/{A6}:{HTTP6}", "up")
        assert data["checkers"] == 2
        _, data = d.wait(f"fd00::1:80/{A6}:9", "down")
        assert "Connection failed" in data["reason"] and f"[{A6}]:tcp:9" in data["reason"]
        assert data["failed"] == f"TCP_CHECK [{A6}]:9"
        # bindto: up, and nftables saw the connections leave from that address
        d.wait("203.0.113.1:2/", "up")
        counter = lab.ns.run(["nft", "list", "chain", "inet", "cktest", "out"]).stdout
        packets = int(counter.split("counter packets ")[1].split()[0])
        assert packets > 0, counter
        # bindto an address the namespace does not have: the socket cannot bind
        _, data = d.wait("203.0.113.1:3/", "down")
        assert "socket bind failed" in data["reason"], data
        d.wait("203.0.113.1:4/", "up")  # bind_if an existing interface
        _, data = d.wait("203.0.113.1:5/", "down")
        assert "socket bind failed" in data["reason"], data
        # fwmark: the marked connections meet the reject rule, unmarked ones (vs 2, 4) do not
        _, data = d.wait("203.0.113.1:6/", "down")
        assert "Connection failed" in data["reason"], data
        _, data = d.wait("203.0.113.1:7/", "down")
        assert "Connection failed" in data["reason"], data
        assert "Traceback" not in d.log()
    finally:
        if d is not None:
            d.stop()
        srv.terminate()
        srv.wait(timeout=10)
        lab.ns.run(["nft", "delete", "table", "inet", "cktest"], check=False)
        lab.ns.del_address("dummy0", f"{B}/24")
        lab.ns.del_address("dummy0", f"{A6}/64")
