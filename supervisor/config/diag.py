"""Problems found while reading a configuration, and the verdict they add up to.

Every problem carries the file and line it came from and prints as ``FILE:LINE: message`` (the form
used everywhere an input error reaches an operator: stderr, logs, control replies). Severities follow
keepalived's config_err classes: a problem that makes the configuration unrunnable (missing file, bad
interface, fatal), a plain error (keepalived still runs with what remains), a script-security
violation, and warnings, which never change the verdict.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import IntEnum

from supervisor.exitcodes import ConfigTestCode


class Severity(IntEnum):
    WARNING = 0
    ERROR = 1  # keepalived would run, without the faulty part
    SECURITY = 2  # script security (config-test code 6)
    FATAL = 3  # keepalived would not run this configuration (code 4)


@dataclass(frozen=True, slots=True)
class Where:
    """A position in the configuration text."""

    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


NOWHERE = Where("<config>", 0)


@dataclass(frozen=True, slots=True)
class Problem:
    where: Where
    severity: Severity
    message: str

    def __str__(self) -> str:
        prefix = "warning: " if self.severity is Severity.WARNING else ""
        return f"{self.where}: {prefix}{self.message}"


@dataclass
class Diagnostics:
    """Collects problems in the order they were found."""

    problems: list[Problem] = field(default_factory=list)
    _seen_once: set[str] = field(default_factory=set)

    def add(self, where: Where, severity: Severity, message: str) -> None:
        self.problems.append(Problem(where, severity, message))

    def warn(self, where: Where, message: str) -> None:
        self.add(where, Severity.WARNING, message)

    def warn_once(self, key: str, where: Where, message: str) -> None:
        """A warning given once per key (e.g. once per unsupported keyword), however often it occurs."""
        if key not in self._seen_once:
            self._seen_once.add(key)
            self.warn(where, message)

    def error(self, where: Where, message: str) -> None:
        self.add(where, Severity.ERROR, message)

    def fatal(self, where: Where, message: str) -> None:
        self.add(where, Severity.FATAL, message)

    def security(self, where: Where, message: str) -> None:
        self.add(where, Severity.SECURITY, message)

    def __iter__(self) -> Iterator[Problem]:
        return iter(self.problems)

    def __len__(self) -> int:
        return len(self.problems)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity > Severity.WARNING]

    @property
    def worst(self) -> Severity | None:
        return max((p.severity for p in self.problems), default=None)

    def config_test_code(self) -> ConfigTestCode:
        worst = self.worst
        if worst is None or worst is Severity.WARNING:
            return ConfigTestCode.OK
        if worst is Severity.FATAL:
            return ConfigTestCode.CANNOT_RUN
        if worst is Severity.SECURITY:
            return ConfigTestCode.SECURITY
        return ConfigTestCode.ERRORS
