"""A served database as a Peer: each call is one HTTP request of
docs/protocol.md, made with httpx over one kept-alive connection pool.

Failures become peersync's own exceptions: an error the server sends is
rebuilt into its class from its code (a remote ``ScopeError`` is raised as
``ScopeError``); a connection that cannot be made or breaks is retried with
exponential backoff, then raised as :class:`~peersync.TransportError`, as is
a batch stream cut short (the session resumes from the last batch applied).
Every call may be retried safely (docs/protocol.md, Idempotency).
"""

from __future__ import annotations

import gzip
import os
import ssl
import threading
import time
import urllib.parse
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import httpx

from peersync._engine import codec, model
from peersync._engine.errors import ConfigurationError, InvalidURL, ProtocolError, SyncError, TransportError
from peersync._engine.knowledge import Knowledge
from peersync._engine.names import NamesArg
from peersync._engine.peer import Handle
from peersync._engine.registry import is_loopback
from peersync._engine.wire import batch_end

from .media import BATCH, COMPRESS_MIN, ERROR, FINISH_HEADER, FINISHED_HEADER, MESSAGE, PREFIX, SNAPSHOT, STREAM
from .snapshot import read_snapshot

TOKEN_ENV = "PEERSYNC_TOKEN"


def base_url(url: str) -> str:
    """``url`` as the base of every request: scheme, host, port and path
    prefix, no trailing slash. Raises :class:`~peersync.InvalidURL`."""
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidURL(f"malformed URL {url!r}: {exc}") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise InvalidURL(f"not a served peer's URL: {url!r} (write http://host:port)")
    if parts.username or parts.password:
        raise InvalidURL(f"{url!r}: put the token in --token or PEERSYNC_TOKEN, not in the URL")
    if parts.query or parts.fragment:
        raise InvalidURL(f"{url!r}: a served peer's URL has no query or fragment")
    del port
    return urllib.parse.urlunsplit((parts.scheme.lower(), parts.netloc, parts.path.rstrip("/"), "", ""))


class HTTPPeer(Handle):
    """A database served by ``peersync serve``, as a :class:`~peersync.Database`
    that reads, syncs and reports; management runs on the server's host.

    ``token`` (default: the ``PEERSYNC_TOKEN`` variable) is sent as a bearer
    token; ``ca`` names a CA bundle to verify an ``https`` server against
    (default: the system's roots); ``compress`` gzips bodies over 16 KiB
    (default: only to a host that is not loopback, where it pays);
    ``retries`` and ``backoff`` shape the retries of failed connections;
    ``timeout`` is seconds per request to connect and between bytes.

    >>> peer = peersync.connect("https://sync.example.com", token="pst_...")  # doctest: +SKIP
    """

    remote = True  # the session engine reads ahead while this peer applies (peersync._engine.ahead)

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        ca: str | None = None,
        compress: bool | None = None,
        retries: int = 5,
        backoff: float = 0.1,
        max_backoff: float = 10.0,
        timeout: float = 60.0,
        max_size: int = codec.DEFAULT_MAX_SIZE,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = base_url(url)
        host = urllib.parse.urlsplit(self.url).hostname or ""
        token = token if token is not None else os.environ.get(TOKEN_ENV) or None
        if token is not None and (not token.isascii() or not token.isprintable() or " " in token):
            raise ConfigurationError("the token has characters no token has (a space, a control character)")
        self.compress = (not is_loopback(host)) if compress is None else compress
        if type(retries) is not int or retries < 0:
            raise ConfigurationError(f"retries must be a whole number from 0, not {retries!r}")
        self.retries, self.backoff, self.max_backoff, self.max_size = retries, backoff, max_backoff, max_size
        verify = _tls_context(self.url, ca)
        headers = {"accept-encoding": "gzip" if self.compress else "identity", "user-agent": "peersync"}
        if token is not None:
            headers["authorization"] = f"Bearer {token}"
        self._local = threading.local()
        self._client = httpx.Client(
            base_url=self.url, headers=headers, verify=verify, timeout=timeout, transport=transport
        )

    # -- plumbing -----------------------------------------------------------------

    def close(self) -> None:
        self._client.close()

    def _path(self, scope: str, call: str) -> str:
        return f"{PREFIX}/scopes/{urllib.parse.quote(scope, safe='')}/{call}"

    def _body(self, data: bytes, content_type: str) -> tuple[bytes, dict[str, str]]:
        headers = {"content-type": content_type}
        if self.compress and len(data) > COMPRESS_MIN:
            packed = gzip.compress(data, compresslevel=1, mtime=0)
            if len(packed) < len(data) * 0.9:
                return packed, headers | {"content-encoding": "gzip"}
        return data, headers

    def _send(
        self, method: str, path: str, body: bytes | None = None, content_type: str = MESSAGE, **kw: Any
    ) -> httpx.Response:
        """The response (streamed, open) to a request, after retries of
        failed connections and 503s; any other status than 200 is raised."""
        content, headers = self._body(body, content_type) if body is not None else (None, {})
        headers |= kw.pop("headers", None) or {}
        request = self._client.build_request(method, path, content=content, headers=headers, **kw)
        delay = self.backoff
        for attempt in range(self.retries + 1):
            try:
                response = self._client.send(request, stream=True)
            except httpx.TransportError as exc:
                if _untrusted(exc):
                    # Trying again cannot make a certificate trusted.
                    raise TransportError(
                        f"{self.url}: its certificate is not trusted ({_say(exc)}); for a private CA pass --ca FILE"
                    ) from exc
                if _handshake_refused(exc):
                    raise TransportError(
                        f"{self.url}: the TLS handshake failed ({_say(exc)}), not retried;"
                        " is the server plain HTTP (then use http://)?"
                    ) from exc
                failure: Exception = exc
            else:
                if response.status_code == 200:
                    return response
                if response.status_code != 503 or attempt == self.retries:
                    raise self._refusal(response)
                response.close()
                failure = TransportError(f"{self.url} is busy (503)")
            if attempt == self.retries:
                raise TransportError(
                    f"{self.url} is unreachable after {attempt + 1} tries: {_say(failure)}"
                ) from failure
            time.sleep(delay)
            delay = min(delay * 2, self.max_backoff)
        raise AssertionError("unreachable")

    def _refusal(self, response: httpx.Response) -> SyncError:
        try:
            body = self._read(response, 64 * 1024)
        except SyncError as exc:
            return exc
        if response.headers.get("content-type", "").startswith(ERROR):
            return codec.ERROR.decode(body)
        return ProtocolError(
            f"{self.url} answered HTTP {response.status_code} without a peersync error (is it a peersync server?)"
        )

    def _read(self, response: httpx.Response, limit: int) -> bytes:
        parts, size = [], 0
        try:
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > limit:
                    raise ProtocolError(f"{self.url} sent a reply over the limit of {limit} bytes")
                parts.append(chunk)
        except httpx.HTTPError as exc:
            raise TransportError(f"{self.url}: the reply was cut: {_say(exc)}") from exc
        finally:
            response.close()
        return b"".join(parts)

    def _call(self, method: str, path: str, body: bytes | None = None, content_type: str = MESSAGE, **kw: Any) -> bytes:
        """One request whose reply is read whole. A reply cut short is
        retried like a failed connection: every call is idempotent."""
        return self._exchange(method, path, body, content_type, **kw)[0]

    def _exchange(
        self, method: str, path: str, body: bytes | None = None, content_type: str = MESSAGE, **kw: Any
    ) -> tuple[bytes, httpx.Headers]:
        """:meth:`_call`, with the reply's headers."""
        delay = self.backoff
        for attempt in range(self.retries + 1):
            response = self._send(method, path, body, content_type, **kw)
            try:
                return self._read(response, self.max_size), response.headers
            except TransportError:
                if attempt == self.retries:
                    raise
            time.sleep(delay)
            delay = min(delay * 2, self.max_backoff)
        raise AssertionError("unreachable")

    # -- the Peer contract ------------------------------------------------------------

    def describe(self, scope: str) -> model.ReplicaInfo:
        return codec.REPLICA_INFO.decode(self._call("GET", self._path(scope, "describe")), max_size=self.max_size)

    def schemas(self, scope: str) -> dict[str, model.TableSchema]:
        return codec.SCHEMAS.decode(self._call("GET", self._path(scope, "schemas")), max_size=self.max_size)

    def _request(self, known: Knowledge, after: int, upto: int, max_rows: int, max_bytes: int) -> bytes:
        return codec.CHANGES_REQUEST.encode(codec.ChangesRequest(known, after, upto, max_rows, max_bytes))

    def changes(self, scope: str, known: Knowledge, after: int, upto: int, *, max_rows: int, max_bytes: int) -> bytes:
        return self._call("POST", self._path(scope, "changes"), self._request(known, after, upto, max_rows, max_bytes))

    def batches(
        self, scope: str, known: Knowledge, after: int, upto: int, *, max_rows: int, max_bytes: int
    ) -> Iterator[bytes]:
        """The pass as one streamed response: each batch as soon as it arrived whole."""
        body = self._request(known, after, upto, max_rows, max_bytes)
        response = self._send("POST", self._path(scope, "batches"), body)
        if not response.headers.get("content-type", "").startswith(STREAM):
            response.close()
            raise ProtocolError(f"{self.url} answered a pass with {response.headers.get('content-type')!r}")
        return self._stream(response)

    def _stream(self, response: httpx.Response) -> Iterator[bytes]:
        try:
            yield from codec.decode_batch_stream(_chunks(self.url, response), max_size=self.max_size)
        finally:
            response.close()

    def apply(self, scope: str, data: bytes, policy: model.ConflictHandler) -> model.ApplyReport:
        """Apply one batch on the server, under the server's own policy
        (docs/protocol.md, Conflict policy). Raises
        :class:`~peersync.ConfigurationError` for a callback policy, which
        cannot run there, before anything is sent."""
        codec.encode_policy(policy)
        ending = self._ending()
        # Only the last apply before a finish can have ended its session: an
        # end recorded earlier (by a session that then failed) is stale.
        ending.finished.pop(scope, None)
        # A final batch of a session that kept nothing out so far ends the
        # session on the server with it: the finish that follows would merge
        # exactly its made-with knowledge (docs/protocol.md, "Finishing with
        # the final batch"), and costs no round trip of its own then.
        session = uuid.uuid4().hex if _is_final(data) and scope not in ending.kept_out else None
        headers = {FINISH_HEADER: session} if session is not None else None
        reply, answer = self._exchange("POST", self._path(scope, "apply"), data, BATCH, headers=headers)
        report = codec.APPLY_REPORT.decode(reply, max_size=self.max_size)
        if not report.excluded.is_empty() or report.failed:
            ending.kept_out.add(scope)
        if session is not None and answer.get(FINISHED_HEADER) == session:
            ending.finished[scope] = report.knowledge.union(report.made_with)
        return report

    def finish(self, scope: str, end: model.SessionEnd) -> Knowledge:
        """End a session. One the server already ended with its final batch
        (nothing kept out, nothing more to merge) sends nothing."""
        ending = self._ending()
        ending.kept_out.discard(scope)
        done = ending.finished.pop(scope, None)
        if done is not None and end.excluded.is_empty() and not end.failures and done.contains_knowledge(end.merge):
            return done
        reply = self._call("POST", self._path(scope, "finish"), codec.SESSION_END.encode(end))
        return codec.KNOWLEDGE.decode(reply, max_size=self.max_size)

    def _ending(self) -> _Ending:
        """This thread's session state (a session runs in one thread; several
        may share this peer)."""
        ending: _Ending | None = getattr(self._local, "ending", None)
        if ending is None:
            ending = self._local.ending = _Ending()
        return ending

    def snapshot(self, scope: str, out: BinaryIO) -> int:
        """Write the server's snapshot of ``scope`` (a SQLite file holding that
        scope alone) into ``out``; its size. A cut stream is
        :class:`~peersync.TransportError`, not retried: the caller starts over."""
        response = self._send("GET", self._path(scope, "snapshot"))
        try:
            if not response.headers.get("content-type", "").startswith(SNAPSHOT):
                raise ProtocolError(f"{self.url} answered a snapshot with {response.headers.get('content-type')!r}")
            return read_snapshot(self.url, _chunks(self.url, response), out)
        finally:
            response.close()

    # -- read-only management --------------------------------------------------------

    def status(self, scope: str | None = None) -> list[model.Status]:
        path = f"{PREFIX}/status" if scope is None else self._path(scope, "status")
        return codec.STATUSES.decode(self._call("GET", path), max_size=self.max_size)

    def scopes(self) -> list[str]:
        return [s.scope for s in self.status()]

    def conflicts(self, scope: str | None = None, *, limit: int | None = None) -> list[model.Conflict]:
        names = [scope] if scope is not None else self.scopes()
        out: list[model.Conflict] = []
        for name in names:
            params = {"limit": str(limit if limit is not None else 1000)}
            reply = self._call("GET", self._path(name, "conflicts"), params=params)
            out.extend(codec.CONFLICTS.decode(reply, max_size=self.max_size))
        return out

    def _local_only(self, what: str) -> ConfigurationError:
        return ConfigurationError(f"{what} runs on the server's host, not over HTTP: run it there on the database file")

    def provision(self, scope: str, tables: Sequence[str], *, names: NamesArg = None) -> bool:
        raise self._local_only("init (provision)")

    def deprovision(self, scope: str) -> None:
        raise self._local_only("deprovision")

    def reidentify(self, scope: str, *, moved: bool = False) -> bytes:
        raise self._local_only("reidentify")

    def migrate(self, scope: str, tables: Sequence[str] | None = None) -> model.RepairReport:
        raise self._local_only("migrate")

    def repair(self, scope: str, *, restamp: bool = False) -> model.RepairReport:
        raise self._local_only("repair")

    def compact(self, scope: str | None = None) -> None:
        raise self._local_only("compact")


def _tls_context(url: str, ca: str | None) -> ssl.SSLContext | bool:
    """How the client verifies TLS: the system's roots (httpx's default), the
    CA file ``ca``, or, for a plain ``http://`` URL, a context that trusts no
    certificate at all. Loading a CA bundle costs about 0.1 s per process, and
    a plain-HTTP peer never makes a TLS handshake (redirects are not followed);
    if one were ever made through it (an ``https`` proxy), it would fail
    closed, never trust what it could not verify."""
    if ca is not None:
        try:
            return ssl.create_default_context(cafile=ca)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigurationError(f"cannot read the CA file {ca}: {exc}") from exc
    if url.startswith("https://"):
        return True
    return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies hostnames against no trusted root


@dataclass
class _Ending:
    """Per thread, since the last ``finish``: the scopes whose applied batches
    kept a row out (failed, deferred: then the session merges less than a
    final batch's knowledge, or nothing), and the scopes the server already
    finished with a final batch, with the knowledge that left there."""

    kept_out: set[str] = field(default_factory=set)
    finished: dict[str, Knowledge] = field(default_factory=dict)


def _is_final(data: bytes) -> bool:
    try:
        return batch_end(data)[1]
    except ProtocolError:
        return False  # the server refuses it


def _chunks(url: str, response: httpx.Response) -> Iterator[bytes]:
    try:
        yield from response.iter_bytes()
    except httpx.HTTPError as exc:
        raise TransportError(f"{url}: the stream was cut: {_say(exc)}") from exc


def _untrusted(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _handshake_refused(exc: BaseException) -> bool:
    """A TLS handshake the server answered with something else than TLS (a
    plain-HTTP server, say): the same every time. A connection closed during
    the handshake (EOF, zero return, a system call error) may be transient."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLError) and not isinstance(
            seen, (ssl.SSLEOFError, ssl.SSLZeroReturnError, ssl.SSLSyscallError, ssl.SSLWantReadError)
        ):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _say(exc: BaseException) -> str:
    text = str(exc).replace("\n", " ")
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def open_http(url: str, **options: Any) -> HTTPPeer:
    """The opener of ``http://`` and ``https://`` URLs (see :class:`HTTPPeer` for options)."""
    return HTTPPeer(url, **options)
