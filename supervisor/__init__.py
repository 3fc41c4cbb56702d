"""pykeepalived's parent process and shared core.

The supervisor forks one process per role (``vrrpd``, ``checkerd``, ``ipvsd``) and owns what they
share: the command line, the keepalived.conf language and its typed model (``supervisor.config``),
the exit-code contract, the ZeroMQ bus with its last-value cache, and the role lifecycle helpers.
Roles import from here; the supervisor never imports a role (it starts them by module name).
"""

__version__ = "0.1.0"
