"""The VRRP role: VRRP v2/v3 instances, their virtual addresses, routes and rules."""
