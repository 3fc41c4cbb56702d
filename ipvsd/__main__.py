"""``python -m ipvsd``: the load-balancer role, started by the supervisor."""

from ipvsd.daemon import IpvsRole
from supervisor.role import run_role

if __name__ == "__main__":
    run_role(IpvsRole())
