"""NAT behaviour discovery (RFC 5780) and classification (RFC 4787 terms)."""
