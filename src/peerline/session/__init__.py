"""Peer sessions: QUIC (aioquic) over the path ICE selected, with streams and messages.

Entry points: `identity.Identity` and `identity.Fingerprint` (who a node is, as
the offer/answer says it), `quic.PeerSession` (the asyncio session over any
`path.DatagramPath`), `core.SessionCore` (the same without I/O), `udp.UdpPath`
(a path to a known address) and `selftest` (two sessions over loopback). Nothing
is imported here, so reading a blob or a fingerprint does not load aioquic.
"""
