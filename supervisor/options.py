"""The command line of ``pykeepalived``: keepalived's options, plus ``--run-dir``.

``build_parser()`` is used by ``supervisor.cli`` (which also handles -t/-d/--dump-toml); everything
else goes to ``supervisor.daemon.run(opts)``. Options keep keepalived's letters and long names so that
existing unit files and habits work. Options keepalived has but we do not act on yet (-B, --all, -x …)
are not accepted, rather than silently ignored, except -B which is harmless (we have no BFD role).
"""

from __future__ import annotations

import argparse

from supervisor import __version__

DEFAULT_CONFIG = "/etc/keepalived/keepalived.conf"
DEFAULT_RUN_DIR = "/run/pykeepalived"
FACILITIES = [*(f"local{i}" for i in range(8)), *(str(i) for i in range(8)), "user", "daemon"]


def build_parser(prog: str = "pykeepalived") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description="keepalived rebuilt in Python: VRRP, health checks and the Linux load balancer.",
    )
    a = p.add_argument
    a("-f", "--use-file", dest="config_file", metavar="FILE", default=DEFAULT_CONFIG,
      help=f"use the specified configuration file (default {DEFAULT_CONFIG})")
    a("-P", "--vrrp", action="store_true", help="only run the VRRP role")
    a("-C", "--check", action="store_true", help="only run the checker and IPVS roles")
    a("-B", "--no_bfd", action="store_true", help="accepted for compatibility (there is no BFD role)")
    a("-l", "--log-console", action="store_true", help="log to the console (stderr) as well as syslog")
    a("-D", "--log-detail", action="count", default=0, help="detailed log messages (twice: more)")
    a("-S", "--log-facility", metavar="FACILITY", default="daemon", choices=FACILITIES,
      help="syslog facility: 0-7, local0-7, user or daemon (default daemon)")
    a("-G", "--no-syslog", action="store_true", help="do not log to syslog")
    a("-V", "--dont-release-vrrp", action="store_true",
      help="at stop, leave the virtual addresses, routes and rules in place")
    a("-I", "--dont-release-ipvs", action="store_true",
      help="at stop, leave the virtual servers in the load balancer")
    a("-R", "--dont-respawn", action="store_true", help="stop the whole daemon if a role dies")
    a("-n", "--dont-fork", action="store_true", help="stay in the foreground (do not daemonize)")
    a("-d", "--dump-conf", action="store_true", help="dump the configuration data")
    a("--dump-toml", action="store_true", help="print the validated configuration as TOML and exit")
    a("-p", "--pid", dest="pid_file", metavar="FILE", help="supervisor pidfile (default RUN_DIR/pykeepalived.pid)")
    a("-r", "--vrrp_pid", dest="vrrp_pid_file", metavar="FILE", help="VRRP pidfile (default RUN_DIR/vrrp.pid)")
    a("-c", "--checkers_pid", dest="checkers_pid_file", metavar="FILE",
      help="checker pidfile (default RUN_DIR/checkers.pid)")
    a("--ipvs_pid", dest="ipvs_pid_file", metavar="FILE", help="IPVS pidfile (default RUN_DIR/ipvs.pid)")
    a("-i", "--config-id", metavar="ID", help="use configuration lines prefixed @ID (default: the host name)")
    a("-t", "--config-test", nargs="?", const="", default=None, metavar="LOGFILE",
      help="check the configuration for errors and exit (messages to stderr, or to LOGFILE)")
    a("-s", "--namespace", metavar="NAME", help="run in network namespace NAME (overrides net_namespace)")
    a("--run-dir", metavar="DIR", default=None,
      help=f"directory for sockets, state and the default pidfiles (default {DEFAULT_RUN_DIR})")
    a("-v", "--version", action="version", version=f"%(prog)s {__version__}")
    return p


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    return build_parser().parse_args(argv)
