"""The exit-code contract between pykeepalived, its roles and the init system.

Runtime codes keep keepalived's meaning: FATAL, CONFIG and MISSING_PERMISSION are permanent errors
that stop the whole daemon; PROGRAM_ERROR marks a bug in a role (an unexpected exception) and is
respawned like a crash, never treated as permanent. The config-test codes are those of keepalived
2.2.7 (``keepalived -t``), the version Debian ships and our oracle.
"""

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    FATAL = 1
    CONFIG = 2
    MISSING_PERMISSION = 4
    NO_CONFIG = 6
    PROGRAM_ERROR = 70


class ConfigTestCode(IntEnum):
    """Exit codes of ``pykeepalived -t``, as ``keepalived -t`` 2.2.7 returns them."""

    OK = 0
    CANNOT_RUN = 4  # file not found, bad interface, fatal error: keepalived would not run this
    ERRORS = 5  # errors, but keepalived would run with what remains
    SECURITY = 6  # scripts configured without enable_script_security, or insecure scripts


PERMANENT = frozenset({ExitCode.FATAL, ExitCode.CONFIG, ExitCode.MISSING_PERMISSION})
