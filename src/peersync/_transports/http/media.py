"""Names shared by the server and the client: the protocol version, paths,
content types and headers of docs/protocol.md."""

from __future__ import annotations

import ipaddress

PROTOCOL = 1
PREFIX = f"/v{PROTOCOL}"

MESSAGE = "application/vnd.peersync+msgpack"
BATCH = "application/vnd.peersync.batch"
STREAM = "application/vnd.peersync.batch-stream"
SNAPSHOT = "application/vnd.peersync.snapshot"
ERROR = "application/vnd.peersync.error+msgpack"

ERROR_HEADER = "peersync-error"

# Bodies smaller than this are not worth compressing (docs/protocol.md, Compression).
COMPRESS_MIN = 16 * 1024


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or address) is this machine's loopback."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
