"""FILE_CHECK: the value in a track_file's file, times the weight, moves the real server's weight.

As in keepalived: a missing or unreadable file, or one without a number, reads as 0. With weight 0 the
real server is down while the value is not 0. Otherwise the real server's weight becomes its configured
weight plus value * weight (negated with ``reverse``), and it is down when that is negative.
"""

from __future__ import annotations

from checkerd.checks.base import Check, Result


def read_value(path: str) -> int:
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            text = f.read(64)
    except OSError:
        return 0
    parts = text.split()
    try:
        return int(parts[0]) if parts else 0
    except ValueError:
        return 0


class FileCheck(Check):
    kind = "FILE_CHECK"

    def describe(self) -> str:
        return f"FILE_CHECK {self.cfg.track_file}"

    def __init__(self, *a: object, base_weight: int = 1, **kw: object) -> None:
        super().__init__(*a, **kw)  # type: ignore[arg-type]
        self.base_weight = base_weight

    async def run(self) -> Result:
        tf = self.target.track_files.get(self.cfg.track_file or "")
        if tf is None:
            return Result.down(f"track_file {self.cfg.track_file} not found")
        value = read_value(tf.file)
        weight = self.cfg.track_file_weight if self.cfg.track_file_weight is not None else tf.weight
        reverse = self.cfg.track_file_reverse if self.cfg.track_file_weight is not None else tf.weight_reverse
        if weight == 0:
            if value:
                return Result.down(f"track_file {tf.name} ({tf.file}) value {value}")
            return Result.up()
        delta = value * weight * (-1 if reverse else 1)
        effective = self.base_weight + delta
        if effective < 0:
            return Result.down(f"track_file {tf.name} ({tf.file}) value {value}: weight {effective}", weight=0)
        return Result.up(weight=effective)
