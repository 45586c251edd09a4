"""A fault-injecting HTTP proxy in front of a real ``peersync serve``.

Each request the proxy receives draws one fault from a seeded generator:

- ``drop-request``: the connection is closed before anything reaches the server;
- ``cut-request``: the server receives the head and a random prefix of the body,
  then the connection to it is closed;
- ``drop-response``: the server answers in full (an apply or finish is committed),
  then the client's connection is closed without a byte of the answer;
- ``cut-response``: the client receives a random prefix of the answer;
- ``duplicate``: the request is sent to the server twice, one after the other,
  and the client gets the second answer (a replayed apply must be recognised);
- ``delay-request`` / ``delay-response``: a pause before forwarding either way;
- ``kill``: after the server answered, it is killed with SIGKILL and restarted
  on the same port, and the client's connection closed; ``kill-during``: the
  same while the server is working on the request, 1 to 30 ms after it was
  sent (at most ``kills`` kills of either kind);
- ``none``: forwarded as is.

The proxy speaks HTTP/1.1 to the client (keep-alive, ``Content-Length``
replies) and forwards each request on its own connection to the server,
reading the reply whole (gzip kept as sent) before deciding its fate.
"""

from __future__ import annotations

import contextlib
import random
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

FAULTS = (
    "none",
    "drop-request",
    "cut-request",
    "drop-response",
    "cut-response",
    "duplicate",
    "delay-request",
    "delay-response",
    "kill",
    "kill-during",
)
# Faults every history meets at least once, on the first requests to each call
# while faults are on: the ones a session must recognise after the server
# committed (a ``kill`` among them when the proxy may kill).
# A session ends with its final ``apply`` (``apply+finish``: the request asks
# the server to end the session with it), or with a ``finish`` of its own when
# it kept a row out; the faults of the end of a session are required of the
# former, which every history has.
REQUIRED = {
    "apply": ("duplicate", "drop-response", "kill", "cut-response", "kill-during", "cut-request"),
    "apply+finish": ("duplicate", "drop-response", "cut-response", "kill"),
    "batches": ("duplicate", "cut-response"),
}
HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host", "date", "server"}


class FaultProxy:
    """The proxy on a free loopback port, forwarding to ``upstream`` (a port).

    ``rate`` is the chance that a request meets a fault at all; ``restart`` is
    called to kill and restart the server for a ``kill`` fault."""

    def __init__(
        self,
        upstream: int,
        seed: int,
        *,
        rate: float = 0.3,
        kills: int = 0,
        restart: Callable[[], None] | None = None,
    ) -> None:
        self.upstream = upstream
        self.rng = random.Random(seed)
        self.rate = rate
        self.kills = kills
        self.restart = restart
        self.faults: Counter[str] = Counter()  # "fault call", e.g. "duplicate apply"
        can_kill = kills > 0 and restart is not None
        self._required = {c: [f for f in fs if not f.startswith("kill") or can_kill] for c, fs in REQUIRED.items()}
        self.enabled = True
        self._lock = threading.Lock()
        self._kill_lock = threading.Lock()
        self._client = httpx.Client(
            base_url=f"http://127.0.0.1:{upstream}", timeout=60, limits=httpx.Limits(max_keepalive_connections=0)
        )
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                proxy._handle(self)

            def do_POST(self) -> None:
                proxy._handle(self)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    # -- drawing ------------------------------------------------------------------

    def _draw(self, call: str) -> tuple[str, float, int]:
        """A fault for a request to ``call``, a delay in seconds and a byte
        position (the seed decides)."""
        with self._lock:
            fault = "none"
            if self.enabled and self._required.get(call):
                fault = self._required[call].pop(0)
                if fault.startswith("kill"):
                    self.kills -= 1
            elif self.enabled and self.rng.random() < self.rate:
                fault = self.rng.choice(FAULTS[1:])
                if fault.startswith("kill"):
                    if self.kills <= 0 or self.restart is None:
                        fault = "drop-response"
                    else:
                        self.kills -= 1
            self.faults[f"{fault} {call}"] += 1
            return fault, self.rng.uniform(0.01, 0.3), self.rng.randrange(1 << 30)

    # -- forwarding -----------------------------------------------------------------

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("content-length") or 0)
        body = h.rfile.read(length) if length else b""
        call = h.path.rsplit("/", 1)[-1]
        if call == "apply" and h.headers.get("peersync-finish") and self._required.get("apply+finish"):
            call = "apply+finish"
        fault, delay, at = self._draw(call)
        if fault == "drop-request":
            return self._close(h)
        if fault == "cut-request":
            self._send_cut(h, body, at)
            return self._close(h)
        if fault == "delay-request":
            time.sleep(delay)
        if fault == "kill-during":
            forward = threading.Thread(target=self._forward_quietly, args=(h, body))
            forward.start()
            time.sleep(delay / 10)
            self._restart()
            forward.join()
            return self._close(h)
        try:
            reply = self._forward(h, body)
            if fault == "duplicate":
                reply = self._forward(h, body)
        except httpx.HTTPError:
            return self._close(h)  # the server is down (being restarted): a failed connection
        if fault == "kill":
            self._restart()
            return self._close(h)
        if fault == "drop-response":
            return self._close(h)
        if fault == "delay-response":
            time.sleep(delay)
        status, headers, content = reply
        head = f"HTTP/1.1 {status} X\r\n".encode()
        for k, v in headers:
            head += f"{k}: {v}\r\n".encode()
        head += f"content-length: {len(content)}\r\n\r\n".encode()
        data = head + content
        if fault == "cut-response":
            data = data[: at % len(data)]
        try:
            h.wfile.write(data)
            h.wfile.flush()
        except OSError:
            return self._close(h)
        if fault == "cut-response":
            self._close(h)
        return None

    def _forward(self, h: BaseHTTPRequestHandler, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        headers = [(k, v) for k, v in h.headers.items() if k.lower() not in HOP]
        request = self._client.build_request(h.command, h.path, content=body, headers=headers)
        response = self._client.send(request, stream=True)
        try:
            content = b"".join(response.iter_raw())  # as sent: still gzipped if it was
        finally:
            response.close()
        kept = [(k, v) for k, v in response.headers.multi_items() if k.lower() not in HOP]
        return response.status_code, kept, content

    def _forward_quietly(self, h: BaseHTTPRequestHandler, body: bytes) -> None:
        with contextlib.suppress(httpx.HTTPError):
            self._forward(h, body)

    def _restart(self) -> None:
        assert self.restart is not None
        with self._kill_lock:
            self.restart()

    def _send_cut(self, h: BaseHTTPRequestHandler, body: bytes, at: int) -> None:
        """The head and a prefix of the body to the server, then a closed connection."""
        head = f"{h.command} {h.path} HTTP/1.1\r\nhost: 127.0.0.1\r\n"
        for k, v in h.headers.items():
            if k.lower() not in HOP:
                head += f"{k}: {v}\r\n"
        head += f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
        data = head.encode() + body
        cut = at % len(data) if len(body) else len(head) // 2 + at % max(1, len(head) // 2)
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.upstream), timeout=5) as s:
            s.sendall(data[:cut])
            time.sleep(0.01)

    @staticmethod
    def _close(h: BaseHTTPRequestHandler) -> None:
        h.close_connection = True
        with contextlib.suppress(OSError):
            h.connection.shutdown(socket.SHUT_RDWR)

    def missing(self) -> list[str]:
        """The required faults not met yet."""
        return [f"{fault} {call}" for call, faults in self._required.items() for fault in faults]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._client.close()
