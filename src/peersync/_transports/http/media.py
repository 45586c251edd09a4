"""Names shared by the server and the client: the protocol version, paths,
content types and headers of docs/protocol.md."""

from __future__ import annotations

PROTOCOL = 1
PREFIX = f"/v{PROTOCOL}"

MESSAGE = "application/vnd.peersync+msgpack"
BATCH = "application/vnd.peersync.batch"
STREAM = "application/vnd.peersync.batch-stream"
SNAPSHOT = "application/vnd.peersync.snapshot"
ERROR = "application/vnd.peersync.error+msgpack"

ERROR_HEADER = "peersync-error"
# A final ``apply`` that asks the server to end the session with it, and the
# answer that it did (docs/protocol.md, "Finishing with the final batch").
FINISH_HEADER = "peersync-finish"
FINISHED_HEADER = "peersync-finished"

# Bodies smaller than this are not worth compressing (docs/protocol.md, Compression).
COMPRESS_MIN = 16 * 1024
