"""Transports: peers that live in another process (the HTTP client and
server). Each is a client of the engine's Peer protocol and its codecs."""
