"""``pykeepalived``: the command line. Config test and dumps are answered here; the rest runs the daemon.

``-t`` prints each problem as ``FILE:LINE: message`` on stderr (or to the -t LOGFILE) and exits with
keepalived 2.2.7's config-test codes (0, 4, 5, 6). ``--dump-toml`` prints the effective model as TOML.
Neither ever shows a traceback for a mistake in the input.
"""

from __future__ import annotations

import os
import sys
from typing import TextIO

from supervisor.config.diag import Diagnostics
from supervisor.config.dump import dump_text
from supervisor.config.load import load_config
from supervisor.config.toml_io import to_toml
from supervisor.exitcodes import ConfigTestCode
from supervisor.options import build_parser

EXIT_CANNOT_READ = 1
_GENHASH = "import sys; from checkerd.genhash import genhash_main; sys.exit(genhash_main(['pykeepalived', *sys.argv[1:]]))"


def _report(diag: Diagnostics, stream: TextIO) -> None:
    for problem in diag:
        print(problem, file=stream)


def config_test(path: str, config_id: str | None, logfile: str, dump: bool) -> int:
    result = load_config(path, config_id=config_id)
    stream: TextIO = sys.stderr
    opened: TextIO | None = None
    if logfile:
        try:
            opened = open(logfile, "w", encoding="utf-8")
            stream = opened
        except OSError as exc:
            print(f"{logfile}: cannot write the log file: {exc.strerror}", file=sys.stderr)
    try:
        _report(result.diag, stream)
    finally:
        if opened is not None:
            opened.close()
    if dump and result.config is not None:
        sys.stdout.write(dump_text(result.config))
    return int(result.diag.config_test_code())


def dump_toml(path: str, config_id: str | None) -> int:
    result = load_config(path, config_id=config_id)
    _report(result.diag, sys.stderr)
    if result.config is None:
        return EXIT_CANNOT_READ
    sys.stdout.write(to_toml(result.config))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] in ("-T", "--genhash"):
        # As in keepalived, -T must come first and turns the rest of the line into genhash's options.
        # genhash lives in the checker role; the supervisor starts role code by module name only.
        os.execv(sys.executable, [sys.executable, "-c", _GENHASH, *args[1:]])
    opts = build_parser().parse_args(args)
    if opts.namespace and (opts.config_test is not None or opts.dump_toml):
        # The verdict depends on the interfaces of the namespace the daemon would run in.
        from supervisor.netns import NetnsError, enter

        try:
            enter(opts.namespace)
        except NetnsError as exc:
            print(f"pykeepalived: {exc}", file=sys.stderr)
            return int(ConfigTestCode.CANNOT_RUN)
    if opts.config_test is not None:
        return config_test(opts.config_file, opts.config_id, opts.config_test, opts.dump_conf)
    if opts.dump_toml:
        return dump_toml(opts.config_file, opts.config_id)
    from supervisor import daemon  # the daemon pulls in ZeroMQ; -t and dumps do not need it

    return daemon.run(opts)


if __name__ == "__main__":
    sys.exit(main())
