"""A real uvicorn server over a database, in a thread of the test process:
for suites that need many served peers (the conformance suite), where a
process per peer would cost a second each to start. Same app, same sockets,
same HTTP as ``peersync serve``; the end-to-end tests use real processes."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import uvicorn

from peersync.server import ServerConfig, create_app


class ThreadedServer:
    """``create_app(ServerConfig(db))`` on a free loopback port until :meth:`stop`."""

    def __init__(self, db: Path, **config: object) -> None:
        app = create_app(ServerConfig(str(db), **config))  # type: ignore[arg-type]
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise AssertionError("the threaded server did not start")
            time.sleep(0.005)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
