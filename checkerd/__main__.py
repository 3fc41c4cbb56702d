"""``python -m checkerd``: the health-checker role, started by the supervisor."""

from checkerd.daemon import CheckerRole
from supervisor.role import run_role

if __name__ == "__main__":
    run_role(CheckerRole())
