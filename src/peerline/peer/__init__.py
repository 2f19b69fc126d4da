"""Two peers connected: ICE for the path, a QUIC session on it, and the commands
(`peerline offer`, `answer`, `connect`) that let people do it by pasting text."""
