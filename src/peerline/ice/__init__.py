"""ICE (RFC 8445, RFC 8838 trickle, RFC 7675 consent) without I/O."""
