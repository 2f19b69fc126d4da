"""TURN (RFC 8656): relay allocations, server and client."""
