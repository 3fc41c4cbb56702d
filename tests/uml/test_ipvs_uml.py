"""Kernel IPVS through ipvsd's Engine, inside User-Mode Linux (one boot, one guest process:
tests/uml/guest_ipvs.py). ``ipvsadm -S -n`` in the guest is the witness."""

from __future__ import annotations

import pytest

from tests.uml.boot import GuestRun

pytestmark = [pytest.mark.uml, pytest.mark.root]

FULL = """\
-A -t 192.0.2.10:80 -s rr
-a -t 192.0.2.10:80 -r 198.51.100.11:8080 -m -w 2
-a -t 192.0.2.10:80 -r 198.51.100.12:8080 -m -w 1
-A -t 192.0.2.10:443 -s mh
-a -t 192.0.2.10:443 -r 198.51.100.14:443 -i -w 1 --tun-type ipip
-A -u 192.0.2.10:53 -s wrr -p 60 -M 255.255.255.0
-a -u 192.0.2.10:53 -r 198.51.100.11:53 -g -w 3
-A --sctp-service 192.0.2.11:80 -s wlc
-a --sctp-service 192.0.2.11:80 -r 198.51.100.15:80 -m -w 1
-A -f 7 -s sh -b sh-fallback,sh-port
-a -f 7 -r 198.51.100.13:0 -g -w 1
"""


def test_configuration_lands_in_the_kernel_exactly(ipvs_guest: GuestRun) -> None:
    d = ipvs_guest.data
    assert d["errors"] == []
    assert d["ipip"] is True  # the real probe sees the guest's ipip (lb_kind TUN needs it)
    assert d["a"] == FULL
    assert d["a_ops"] == 11  # 5 services + 6 real servers, nothing else


def test_health_events_change_weights_and_membership(ipvs_guest: GuestRun) -> None:
    d = ipvs_guest.data
    assert d["down_inhibit"] == FULL.replace("198.51.100.12:8080 -m -w 1", "198.51.100.12:8080 -m -w 0")
    assert d["down_remove"] == d["down_inhibit"].replace("-a -t 192.0.2.10:80 -r 198.51.100.11:8080 -m -w 2\n", "")
    assert d["back_up"] == FULL


def test_restart_without_change_sends_nothing(ipvs_guest: GuestRun) -> None:
    d = ipvs_guest.data
    assert d["restart_ops"] == 0 and d["restart_same"] is True


def test_crash_leftovers_cleaned_foreign_kept_unless_lvs_flush(ipvs_guest: GuestRun) -> None:
    d = ipvs_guest.data
    kept = FULL.split("-A -t 192.0.2.10:443")[0] + "-A -t 192.0.2.99:80 -s rr\n" + \
        "-A -u 192.0.2.10:53" + FULL.split("-A -u 192.0.2.10:53")[1].split("-A --sctp")[0] + \
        "-A -f 7" + FULL.split("-A -f 7")[1]
    assert d["after_crash"] == kept
    assert d["crash_ops"] == 2  # the :443 and SCTP services, nothing else
    assert d["after_flush"] == kept.replace("-A -t 192.0.2.99:80 -s rr\n", "")
    assert d["flush_ops"] == 1
    assert d["after_stop"] == ""
    assert d["after_stop_keep"] == 4  # -I: our three services and the foreign one stay
    assert d["after_stop_flush_all"] == ""  # lvs_flush_on_stop all: the foreign one goes too


def test_fnat_on_ipvs_is_an_error_with_file_line(ipvs_guest: GuestRun) -> None:
    assert ipvs_guest.data["fnat_error"] == [
        "k.conf:5: lb_kind FNAT is not available on kernel IPVS (lb_backend ipvs); use lb_backend auto or nftables"]


def test_health_event_latency_is_recorded(ipvs_guest: GuestRun) -> None:
    # UML makes every syscall slow; this bounds the guest figure, the report gives it.
    assert ipvs_guest.data["health_ms_p99"] < 200


def test_real_tcp_traffic_through_kernel_ipvs_nat(ipvs_guest: GuestRun) -> None:
    t = ipvs_guest.data["traffic"]
    # NAT: the real server sees the client's address and is reached on its own; rr alternates
    assert {a.split()[1] for a in t["answers"]} == {"203.0.113.2"}
    seq = [a.split()[2] for a in t["answers"]]
    assert set(seq[:2]) == {"198.51.100.21", "198.51.100.22"} and seq == seq[:2] * 3, seq
    st = t["stats"]["tcp:203.0.113.100:80"]  # (the cumulative counter lags: the kernel sums it every 2 s)
    assert st["active"] + st["inactive"] == 6
    # a real server down: the next connections all go to the other one
    assert [a.split()[2] for a in t["after_down"]] == ["198.51.100.22"] * 3


def test_lvs_timeouts_set_in_the_kernel(ipvs_guest: GuestRun) -> None:
    t = ipvs_guest.data["timeouts"]
    assert t["before"] == "Timeout (tcp tcpfin udp): 900 120 300"  # the kernel's defaults
    assert t["start"] == "Timeout (tcp tcpfin udp): 7200 60 200"
    assert t["start_ops"] == 4  # the service, its two real servers, the timeouts
    assert t["restart_ops"] == 0  # the kernel already holds them: nothing sent
    assert t["reload_ops"] == 1 and t["reload"] == "Timeout (tcp tcpfin udp): 7200 30 200"  # only tcpfin changed
