from supervisor.config.diag import Diagnostics, Where
from supervisor.exitcodes import ConfigTestCode


def test_verdict_follows_worst_problem() -> None:
    d = Diagnostics()
    assert d.config_test_code() is ConfigTestCode.OK
    d.warn(Where("a.conf", 1), "just a warning")
    assert d.config_test_code() is ConfigTestCode.OK
    d.error(Where("a.conf", 2), "bad value")
    assert d.config_test_code() is ConfigTestCode.ERRORS
    d.fatal(Where("a.conf", 3), "no such interface")
    assert d.config_test_code() is ConfigTestCode.CANNOT_RUN
    assert str(d.problems[1]) == "a.conf:2: bad value"
