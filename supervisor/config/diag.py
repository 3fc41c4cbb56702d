"""Problems found while reading a configuration, and the verdict they add up to.

Every problem carries the file and line it came from and prints as ``FILE:LINE: message`` (the form
used everywhere an input error reaches an operator: stderr, logs, control replies).

Severities follow keepalived 2.2.7's config_err classes, and so does the verdict of ``-t``: keepalived
keeps the numerically largest class reported, so a script-security violation beats everything, any
ordinary error or warning beats the "cannot run" class, and exit 4 happens only when every problem is
of that class (tests/integration/config/ORACLE.md has the measurements). NOTICE is ours: remarks that
keepalived does not make (a keyword accepted with no effect yet, a DPVS-only keyword, a missing
optional include) and that must not change a verdict keepalived would give.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import IntEnum

from supervisor.exitcodes import ConfigTestCode


class Severity(IntEnum):
    """Ordered as keepalived ranks its config_err values: the largest reported one decides the verdict."""

    NOTICE = 0  # ours only; never changes the verdict
    FATAL = 1  # keepalived would not run this configuration (file not found, bad interface, fatal)
    WARNING = 2  # keepalived reports it (deprecations, defaults it had to choose) and still runs
    ERROR = 3  # keepalived would run, without the faulty part
    SECURITY = 4  # scripts would run without enable_script_security (config-test code 6)


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
        prefix = "warning: " if self.severity in (Severity.WARNING, Severity.NOTICE) else ""
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

    def notice(self, where: Where, message: str) -> None:
        self.add(where, Severity.NOTICE, message)

    def notice_once(self, key: str, where: Where, message: str) -> None:
        """A notice given once per key (e.g. once per unsupported keyword), however often it occurs."""
        if key not in self._seen_once:
            self._seen_once.add(key)
            self.notice(where, message)

    def warn_once(self, key: str, where: Where, message: str) -> None:
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
        """Problems that are not warnings: what makes a reload refuse a configuration."""
        return [p for p in self.problems if p.severity in (Severity.FATAL, Severity.ERROR, Severity.SECURITY)]

    @property
    def worst(self) -> Severity | None:
        return max((p.severity for p in self.problems), default=None)

    def config_test_code(self) -> ConfigTestCode:
        worst = self.worst
        if worst is None or worst is Severity.NOTICE:
            return ConfigTestCode.OK
        if worst is Severity.FATAL:
            return ConfigTestCode.CANNOT_RUN
        if worst is Severity.SECURITY:
            return ConfigTestCode.SECURITY
        return ConfigTestCode.ERRORS
