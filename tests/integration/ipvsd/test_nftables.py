"""nftables backend, for real, in namespaces: client -> LB (ipvsd's Engine) -> three real servers.

Each test configures the Engine running in the LB namespace (tests/integration/ipvsd/driver.py), sends
real TCP requests from the client namespace and looks at which real server answered and which source
address it saw. ``nft`` is the independent witness of what is in the kernel.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
from collections import Counter

import pytest

from tests.integration.ipvsd.conftest import HERE, POOL, PY, RS, RS6, VIP, VIP6, LbLab

pytestmark = pytest.mark.root


def vs(port: int, body: str, servers: str = "", method: str = "NAT") -> str:
    rs = servers or "".join(f"    real_server {a} 8080 {{\n    }}\n" for a in RS)
    return (f"virtual_server {VIP} {port} {{\n    lb_kind {method}\n    protocol TCP\n{body}\n{rs}}}\n")


POOLCONF = "local_address_group pool {\n" + "".join(f"    {a}\n" for a in POOL) + "}\n"


def names(answers: list[str]) -> list[str]:
    assert all(not a.startswith("ERR") for a in answers), answers
    return [a.split()[0] for a in answers]


def no_counts(table: str) -> str:
    return re.sub(r"packets \d+ bytes \d+", "", table)


def no_gen(table: str) -> str:
    return re.sub(r"map gen \{.*?\n\t\}", "", table, flags=re.S)


def packets(table: str) -> int:
    return sum(int(n) for n in re.findall(r"packets (\d+)", table))


def peers(answers: list[str]) -> set[str]:
    return {a.split()[1] for a in answers}


@pytest.fixture
def drv(lab: LbLab):  # type: ignore[no-untyped-def]
    d = lab.driver()
    yield d
    for other in lab.drivers:
        if other.proc.poll() is None:
            other.call("stop")
            other.proc.wait(timeout=10)
    lab.drivers.clear()
    # every test starts from an empty LB
    assert "pykeepalived" not in lab.nft("list", "tables")


def test_nat_and_fnat_round_robin_alternate(lab: LbLab, drv) -> None:  # type: ignore[no-untyped-def]
    drv.config(POOLCONF + vs(80, "    lb_algo rr") +
               vs(81, "    lb_algo rr\n    laddr_group_name pool", method="FNAT"))
    nat = lab.requests(80, 9)
    seq = names(nat)
    assert len(set(seq[:3])) == 3 and seq[3:6] == seq[:3] and seq[6:9] == seq[:3], seq
    assert peers(nat) == {"203.0.113.2"}  # NAT: the real server sees the client
    fnat = lab.requests(81, 9)
    seq = names(fnat)
    assert len(set(seq[:3])) == 3 and seq[3:6] == seq[:3] and seq[6:9] == seq[:3], seq
    assert peers(fnat) <= set(POOL)  # FNAT: only pool addresses reach the real servers
    assert lab.lb.run(["sysctl", "-n", "net.ipv4.ip_forward"]).stdout.strip() == "1"


def test_wrr_proportions(lab: LbLab, drv) -> None:  # type: ignore[no-untyped-def]
    servers = "".join(f"    real_server {a} 8080 {{\n        weight {w}\n    }}\n" for a, w in zip(RS, (3, 1, 2), strict=True))
    drv.config(vs(80, "    lb_algo wrr", servers))
    c = Counter(names(lab.requests(80, 18)))
    assert c == {"rs1": 9, "rs2": 3, "rs3": 6}


def test_sh_keeps_a_client_on_one_server(lab: LbLab, drv) -> None:  # type: ignore[no-untyped-def]
    drv.config(vs(80, "    lb_algo sh"))
    assert len(set(names(lab.requests(80, 8)))) == 1


def test_pool_address_on_no_interface_is_named(lab: LbLab, drv) -> None:  # type: ignore[no-untyped-def]
    pool = POOLCONF.replace(f"    {POOL[1]}\n", f"    {POOL[1]}\n    198.51.100.250\n")
    r = drv.call("config", text=pool + vs(80, "    lb_algo rr\n    laddr_group_name pool", method="FNAT"))
    assert r["ok"] and r["warnings"] == ["local_address_group addresses on no interface (FNAT cannot use them): "
                                         "198.51.100.250"]


def test_persistence_holds(lab: LbLab, drv) -> None:  # type: ignore[no-untyped-def]
    drv.config(POOLCONF + vs(80, "    lb_algo rr\n    persistence_timeout 30\n    laddr_group_name pool",
                             method="FNAT"))
    got = lab.requests(80, 8)
    assert len(set(names(got))) == 1 and peers(got) <= set(POOL)
    assert "timeout 30s" in lab.nft("list", "table", "inet", "pykeepalived")


def test_syn_proxy_answers_the_syn_and_serves(lab: LbLab, drv) -> None:  # type: ignore[no-untyped-def]
    drv.config(POOLCONF + vs(80, "    lb_algo rr\n    syn_proxy\n    laddr_group_name pool", method="FNAT"))
    assert lab.lb.run(["sysctl", "-n", "net.netfilter.nf_conntrack_tcp_loose"]).stdout.strip() == "0"
    got = lab.requests(80, 6)
    assert len(set(names(got))) == 3 and peers(got) <= set(POOL)
    # With every real server down the LB still completes the client's handshake: the SYN/ACK is the
    # synproxy's cookie, not a real server's.
    for a in RS:
        drv.health(f"{VIP}:80", f"{a}:8080", up=False)
    assert lab.requests(80, 2, "--connect-only") == ["CONNECTED", "CONNECTED"]
    assert all(a.startswith("ERR") for a in lab.requests(80, 2))
    drv.call("stop")
    drv.proc.wait(timeout=10)
    assert lab.lb.run(["sysctl", "-n", "net.netfilter.nf_conntrack_tcp_loose"]).stdout.strip() == "1"


def test_real_server_down_stops_new_connections_within_one_event(lab: LbLab, drv) -> None:  # type: ignore[no-untyped-def]
    drv.config(vs(80, "    lb_algo rr"))
    r = drv.health(f"{VIP}:80", f"{RS[1]}:8080", up=False)
    assert r["changes"] > 0
    assert Counter(names(lab.requests(80, 6))) == {"rs1": 3, "rs3": 3}
    drv.health(f"{VIP}:80", f"{RS[1]}:8080", up=True)
    assert Counter(names(lab.requests(80, 6))) == {"rs1": 2, "rs2": 2, "rs3": 2}
    # nobody left: the connection is dropped (pre_drop), never answered by the LB's own stack on the VIP
    for a in RS:
        drv.health(f"{VIP}:80", f"{a}:8080", up=False)
    local = lab.lb.popen([PY, "-c", "import socket; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, "
                          "socket.SO_REUSEADDR, 1); s.bind(('0.0.0.0', 80)); s.listen(); print('up', flush=True); "
                          "c, _ = s.accept(); c.sendall(b'local x x'); c.close()"], stdout=subprocess.PIPE, text=True)
    try:
        assert local.stdout is not None and local.stdout.readline() == "up\n"
        assert lab.requests(80, 1) == ["ERR:TimeoutError"]
    finally:
        local.kill()
        local.wait(timeout=10)
    drv.health(f"{VIP}:80", f"{RS[0]}:8080", up=True)
    assert names(lab.requests(80, 2)) == ["rs1", "rs1"]


def test_quorum_loss_switches_to_sorry_server_and_back(lab: LbLab, drv) -> None:  # type: ignore[no-untyped-def]
    servers = "".join(f"    real_server {a} 8080 {{\n    }}\n" for a in RS[:2])
    drv.config(vs(80, f"    lb_algo rr\n    quorum 2\n    sorry_server {RS[2]} 8080", servers))
    assert Counter(names(lab.requests(80, 4))) == {"rs1": 2, "rs2": 2}
    r = drv.health(f"{VIP}:80", f"{RS[0]}:8080", up=False)
    assert r["events"] == [[f"{VIP}:80", False]]
    assert names(lab.requests(80, 4)) == ["rs3"] * 4
    r = drv.health(f"{VIP}:80", f"{RS[0]}:8080", up=True)
    assert r["events"] == [[f"{VIP}:80", True]]
    assert Counter(names(lab.requests(80, 4))) == {"rs1": 2, "rs2": 2}


def test_restart_without_change_touches_nothing_and_crash_leftovers_are_cleaned(lab: LbLab, drv) -> None:  # type: ignore[no-untyped-def]
    conf = POOLCONF + vs(80, "    lb_algo rr") + vs(81, "    lb_algo wrr\n    laddr_group_name pool", method="FNAT")
    drv.config(conf)
    lab.requests(80, 3)
    before = lab.nft("-a", "list", "table", "inet", "pykeepalived")
    assert packets(before) >= 3
    # someone else's table, which must survive everything we do
    lab.lb.run(["nft", "add table ip foreign; add chain ip foreign c; add rule ip foreign c counter"])
    os.kill(drv.proc.pid, signal.SIGKILL)
    drv.proc.wait(timeout=10)
    again = lab.driver()
    r = again.config(conf)
    assert r["changes"] == 0
    after = lab.nft("-a", "list", "table", "inet", "pykeepalived")
    assert no_counts(after) == no_counts(before)  # same rules, same handles
    assert packets(after) >= packets(before) >= 3  # counters kept (late FIN/ACKs may add a few)
    assert again.call("info")["batches"] == 0
    # killed again, then started with a configuration without :81: only :81 goes
    os.kill(again.proc.pid, signal.SIGKILL)
    again.proc.wait(timeout=10)
    third = lab.driver()
    third.config(vs(80, "    lb_algo rr"))
    table = lab.nft("list", "table", "inet", "pykeepalived")
    assert "dport 81" not in table and "snat" not in table and packets(table) >= 3
    assert "foreign" in lab.nft("list", "tables")
    third.call("stop")
    third.proc.wait(timeout=10)
    assert "foreign" in lab.nft("list", "tables")
    lab.lb.run(["nft", "delete table ip foreign"])


def test_restart_trusts_the_record_only_while_the_table_generation_matches(lab: LbLab, drv) -> None:  # type: ignore[no-untyped-def]
    conf = vs(80, "    lb_algo rr") + vs(81, "    lb_algo wrr\n    persistence_timeout 30")
    drv.config(conf)
    down = (f"{VIP}:80", f"{RS[1]}:8080")
    drv.health(*down, up=False)  # journalled, not in the state file yet
    table = lab.nft("list", "table", "inet", "pykeepalived")
    state, journal = lab.run_dir / "ipvs.nft.json", lab.run_dir / "ipvs.nft.journal"
    assert state.exists() and journal.read_text().count("\n") == 1
    os.kill(drv.proc.pid, signal.SIGKILL)
    drv.proc.wait(timeout=10)
    # respawned with the same health: the record (state file + journal) matches, nothing is read in full
    again = lab.driver()
    again.health(*down, up=False)
    assert again.config(conf)["changes"] == 0
    info = again.call("info")
    assert info["batches"] == 0 and info["full_reads"] == 0
    assert no_counts(lab.nft("list", "table", "inet", "pykeepalived")) == no_counts(table)
    # a crash between a commit and its record: the record is one generation behind the kernel
    saved = (state.read_text(), journal.read_text())
    again.health(*down, up=True)
    os.kill(again.proc.pid, signal.SIGKILL)
    again.proc.wait(timeout=10)
    state.write_text(saved[0])
    journal.write_text(saved[1])
    third = lab.driver()
    third.health(*down, up=False)
    assert third.config(conf)["changes"] > 0  # the kernel had the server back: it goes again
    assert third.call("info")["full_reads"] == 1
    assert no_counts(no_gen(lab.nft("list", "table", "inet", "pykeepalived"))) == no_counts(no_gen(table))
    assert names(lab.requests(80, 4)).count("rs2") == 0
    third.call("stop")
    third.proc.wait(timeout=10)


def listed_handles(lab: LbLab) -> dict[tuple[str, str], int]:
    """(chain, comment) -> handle as ``nft -a`` shows them (the witness for what the engine computed)."""
    out: dict[tuple[str, str], int] = {}
    chain = ""
    for line in lab.nft("-a", "-t", "list", "table", "inet", "pykeepalived").splitlines():
        if m := re.match(r"\s*chain (\S+) \{", line):
            chain = m.group(1)
        elif m := re.search(r'comment "([^"]+)" # handle (\d+)$', line):
            out[(chain, m.group(1))] = int(m.group(2))
    return out


def test_rule_handles_are_known_without_listing_the_table(lab: LbLab, drv) -> None:  # type: ignore[no-untyped-def]
    sparse = "local_address_group sparse {\n    198.51.100.201\n    198.51.100.205\n}\n"  # an anonymous map
    six = "".join(f"    real_server {a} 8080 {{\n    }}\n" for a in RS6)
    conf = (POOLCONF + sparse + vs(80, "    lb_algo rr\n    laddr_group_name sparse", method="FNAT")
            + vs(81, "    lb_algo wrr\n    persistence_timeout 30") + vs(82, "    lb_algo rr\n    syn_proxy")
            + vs(83, "    lb_algo sh\n    est_timeout 50\n    laddr_group_name pool", method="FNAT")
            + f"virtual_server {VIP6} 80 {{\n    lb_kind NAT\n    lb_algo rr\n    protocol TCP\n{six}}}\n")

    def check() -> int:
        state = json.loads((lab.run_dir / "ipvs.nft.json").read_text())
        listed = listed_handles(lab)
        known = [(c, m, h) for c, rules in state["rules"].items() for h, m in rules if h is not None]
        assert all(listed[(c, m)] == h for c, m, h in known), [(c, m, h, listed.get((c, m))) for c, m, h in known]
        return len(known)

    drv.config(conf)
    assert check() >= 10
    # a reload that drops :81, changes :83's scheduler and adds :84: old rules go by the handles computed
    conf2 = conf.replace(vs(81, "    lb_algo wrr\n    persistence_timeout 30"), vs(84, "    lb_algo rr"))
    conf2 = conf2.replace("lb_algo sh\n    est_timeout 50", "lb_algo rr\n    est_timeout 50")
    assert drv.config(conf2)["changes"] > 0
    table = lab.nft("list", "table", "inet", "pykeepalived")
    assert "dport 81" not in table and "dport 84" in table and "jhash" not in table.split("chain post")[0]
    info = drv.call("info")
    assert info["full_reads"] == 1 and info["listings"] == 0  # only the first pass's read, when there was no record
    assert check() >= 10


def test_health_event_to_kernel_is_fast(lab: LbLab, drv) -> None:  # type: ignore[no-untyped-def]
    drv.config(vs(80, "    lb_algo rr"))
    times = []
    for i in range(40):
        times.append(drv.health(f"{VIP}:80", f"{RS[i % 3]}:8080", up=bool(i % 2))["ms"])
    times.sort()
    assert times[int(len(times) * 0.99) - 1] < 50, times  # p99 measured ~ a few ms; generous for CI


def test_kill_9_during_traffic_loses_no_request(lab: LbLab, drv) -> None:  # type: ignore[no-untyped-def]
    conf = POOLCONF + vs(80, "    lb_algo rr\n    laddr_group_name pool", method="FNAT")
    drv.config(conf)
    before = lab.nft("-a", "list", "table", "inet", "pykeepalived")
    client = lab.client.popen([PY, str(HERE / "client.py"), VIP, "80", "100000", "--duration", "2.0"],
                              stdout=subprocess.PIPE, text=True)
    os.kill(drv.proc.pid, signal.SIGKILL)
    drv.proc.wait(timeout=10)
    again = lab.driver()
    assert again.config(conf)["changes"] == 0
    out, _ = client.communicate(timeout=30)
    answers = json.loads(out)
    assert len(answers) > 20 and not [a for a in answers if a.startswith("ERR")]
    after = lab.nft("-a", "list", "table", "inet", "pykeepalived")
    assert no_counts(before) == no_counts(after)


def test_least_connection_sends_new_connections_to_the_less_loaded_server(lab: LbLab, drv) -> None:  # type: ignore[no-untyped-def]
    servers = "".join(f"    real_server {a} 8080 {{\n    }}\n" for a in RS[:2])
    drv.config(vs(80, "    lb_algo wlc", servers))
    # long-lived connections, all on rs2 (rs1 is down while they open)
    drv.health(f"{VIP}:80", f"{RS[0]}:8080", up=False)
    holder = lab.client.popen([PY, "-c", HOLDER, VIP, "80", "6"], stdout=subprocess.PIPE, stdin=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout is not None
        got = holder.stdout.readline().split()
        assert got == ["rs2"] * 6, got
        drv.health(f"{VIP}:80", f"{RS[0]}:8080", up=True)
        assert drv.call("rebalance")["changes"] > 0
        # rs2 holds 6 connections, rs1 none: the next period's new connections fill rs1 first
        assert names(lab.requests(80, 6)) == ["rs1"] * 6
    finally:
        holder.communicate(input="\n", timeout=10)
    drv.call("rebalance")
    assert Counter(names(lab.requests(80, 4))) == {"rs1": 2, "rs2": 2}  # equal loads: plain weights again


HOLDER = r'''
import socket, sys
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
socks, names = [], []
for _ in range(n):
    s = socket.create_connection((host, port), timeout=3)
    s.sendall(b"HOLD\r\n")
    names.append(s.recv(200).decode().split()[0])
    socks.append(s)
print(" ".join(names), flush=True)
sys.stdin.readline()
for s in socks:
    s.close()
'''


def established_timeouts(lab: LbLab, port: int) -> list[int]:
    """conntrack's remaining timeout of each established connection to VIP:port (the independent witness)."""
    out = lab.lb.run(["conntrack", "-L", "-p", "tcp", "--dport", str(port), "--state", "ESTABLISHED"]).stdout
    return [int(line.split()[2]) for line in out.splitlines() if f"dst={VIP} " in line]


def test_est_timeout_sets_the_established_timeout_of_the_service_connections(lab: LbLab, drv) -> None:  # type: ignore[no-untyped-def]
    drv.config(vs(80, "    lb_algo rr\n    est_timeout 77") + vs(81, "    lb_algo rr"))
    holders = [lab.client.popen([PY, "-c", HOLDER, VIP, str(port), "2"], stdout=subprocess.PIPE,
                                stdin=subprocess.PIPE, text=True) for port in (80, 81)]
    try:
        for h in holders:
            assert h.stdout is not None and len(h.stdout.readline().split()) == 2
        with_to, without = established_timeouts(lab, 80), established_timeouts(lab, 81)
        assert len(with_to) == 2 and all(60 < t <= 77 for t in with_to), with_to
        assert len(without) == 2 and all(t > 400000 for t in without), without  # the default (5 days) elsewhere
    finally:
        for h in holders:
            h.communicate(input="\n", timeout=10)
    # a reload without est_timeout drops the object; new connections get the default again
    drv.config(vs(80, "    lb_algo rr"))
    assert "ct timeout" not in lab.nft("list", "table", "inet", "pykeepalived")


def test_fnat_on_a_fwmark_service_sources_from_the_pool(lab: LbLab, drv) -> None:  # type: ignore[no-untyped-def]
    # the operator's own table marks the traffic (pykeepalived never touches it)
    lab.lb.run(["nft", "add table ip opmark; add chain ip opmark pre { type filter hook prerouting priority -150; }; "
                f"add rule ip opmark pre ip daddr {VIP} tcp dport 82 meta mark set 5"])
    try:
        rs = "".join(f"    real_server {a} 8080 {{\n    }}\n" for a in RS)
        drv.config(POOLCONF + f"virtual_server fwmark 5 {{\n    lb_kind FNAT\n    lb_algo rr\n"
                              f"    laddr_group_name pool\n{rs}}}\n")
        got = lab.requests(82, 6)
        assert Counter(names(got)) == {"rs1": 2, "rs2": 2, "rs3": 2}
        assert peers(got) <= set(POOL)  # FNAT, not NAT: the real servers never see the client
    finally:
        lab.lb.run(["nft", "delete table ip opmark"])


def test_ipv6_round_robin_alternates_and_a_down_server_leaves(lab: LbLab, drv) -> None:  # type: ignore[no-untyped-def]
    rs = "".join(f"    real_server {a} 8080 {{\n    }}\n" for a in RS6)
    drv.config(f"virtual_server {VIP6} 80 {{\n    lb_kind NAT\n    lb_algo rr\n    protocol TCP\n{rs}}}\n")
    assert "ip6 daddr fd00:1::10 tcp dport 80" in lab.nft("list", "table", "inet", "pykeepalived")
    got = lab.requests(80, 6, host=VIP6)
    assert Counter(names(got)) == {"rs1": 2, "rs2": 2, "rs3": 2}, got
    assert len(set(names(got)[:3])) == 3  # rr: three different servers in a row
    assert peers(got) == {"fd00:1::2"}  # NAT: the real servers see the client
    drv.health(f"{VIP6}:80", f"{RS6[1]}:8080", up=False)
    got = names(lab.requests(80, 6, host=VIP6))
    assert "rs2" not in got and Counter(got) == {"rs1": 3, "rs3": 3}
