"""Peer sessions: QUIC (aioquic) over the path ICE selected, with streams and messages."""
