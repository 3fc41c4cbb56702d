"""``python -m vrrpd``: the VRRP role, started by the supervisor (see supervisor.role for the lifecycle)."""

from supervisor.role import run_role
from vrrpd.daemon import VrrpRole

if __name__ == "__main__":
    run_role(VrrpRole())
