"""The NAT lab: hosts in network namespaces behind real kernel NATs."""
