"""The IPVS-writer role: the only process that writes load-balancer state to the kernel."""
