from supervisor.config.diag import Diagnostics, Where
from supervisor.exitcodes import ConfigTestCode


def test_verdict_follows_worst_problem() -> None:
    d = Diagnostics()
    assert d.config_test_code() is ConfigTestCode.OK
    d.notice(Where("a.conf", 1), "just a notice")
    assert d.config_test_code() is ConfigTestCode.OK
    d.error(Where("a.conf", 2), "bad value")
    assert d.config_test_code() is ConfigTestCode.ERRORS
    d.fatal(Where("a.conf", 3), "no such interface")
    # keepalived 2.2.7 keeps the numerically largest class: an ordinary error beats "cannot run"
    assert d.config_test_code() is ConfigTestCode.ERRORS
    assert str(d.problems[1]) == "a.conf:2: bad value"


def test_cannot_run_only_when_every_problem_is_fatal_class() -> None:
    d = Diagnostics()
    d.notice(Where("a.conf", 1), "accepted, has no effect yet")
    d.fatal(Where("a.conf", 3), "unknown interface eth9 specified for up/down delay")
    assert d.config_test_code() is ConfigTestCode.CANNOT_RUN
    d.security(Where("a.conf", 4), "SECURITY VIOLATION")
    assert d.config_test_code() is ConfigTestCode.SECURITY
