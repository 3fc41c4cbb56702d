"""keepalived's log lines for checker transitions (the MISC_CHECK ones name the script by argv[0])."""

from __future__ import annotations

from pathlib import Path

from checkerd.checks import make_check
from checkerd.scheduler import _down_line, _up_line, target_of
from supervisor.config.load import load_text


def misc(path: str) -> str:
    r = load_text("virtual_server 203.0.113.1 80 {\n protocol TCP\n real_server 192.0.2.2 80 {\n"
                  f" MISC_CHECK {{\n misc_path {path}\n }}\n }}\n}}\n")
    assert r.config is not None, [str(p) for p in r.diag]
    vs = r.config.virtual_servers[0]
    rs = vs.real_servers[0]
    return _up_line(make_check(rs.checkers[0], target_of(vs, rs)))


def test_misc_succeeded_line_names_the_whole_script(tmp_path: Path) -> None:
    head = "Misc check for [[192.0.2.2]:tcp:80 VS [203.0.113.1]:tcp:80] by ["
    assert misc('"/bin/sh -c true"') == f"{head}/bin/sh] succeeded."
    assert misc("/bin/true") == f"{head}/bin/true] succeeded."
    # a quoted program path with a space stays whole; short names are not cut either
    prog = tmp_path / "my checks" / "x"
    prog.parent.mkdir()
    prog.write_text("#!/bin/sh\n")
    prog.chmod(0o755)
    assert misc(f"\"'{prog}' -v\"") == f"{head}{prog}] succeeded."
    assert misc("ls") == f"{head}ls] succeeded."


def test_tcp_lines() -> None:
    r = load_text("virtual_server 203.0.113.1 80 {\n protocol TCP\n real_server 192.0.2.2 80 {\n"
                  " TCP_CHECK {\n }\n }\n}\n")
    assert r.config is not None
    vs = r.config.virtual_servers[0]
    c = make_check(vs.real_servers[0].checkers[0], target_of(vs, vs.real_servers[0]))
    assert _up_line(c) == "TCP connection to [192.0.2.2]:tcp:80 success."
    assert _down_line(c, 1) == "TCP_CHECK on service [192.0.2.2]:tcp:80 failed after 1 retries."
