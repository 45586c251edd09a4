"""A served database refuses what it must (SEMANTICS.md promise 9; issue 9,
Security): missing or wrong tokens (401), tokens without the right (403),
and malformed, truncated, oversized, slow, forged, wrong-schema and replayed
bodies (4xx), each leaving rows and knowledge exactly as they were."""

from __future__ import annotations

import gzip
import hashlib
import json
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import msgpack
import pytest

import peersync
from peersync import Knowledge
from peersync._engine import codec

from ..helpers import write
from .conftest import Server, dump, items, make, run

MAX_BODY = 64 * 1024


@dataclass
class Guarded:
    server: Server
    db: Path
    write: str  # a write token for scope s
    read: str  # a read-only token for scope s
    other: str  # a write token for scope t only
    add_output: str


@pytest.fixture(scope="module")
def guarded(folder: Path, servers: Callable[..., Server]) -> Guarded:
    db = make(folder / "guarded.db", "CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT, qty INTEGER);"
                                     "CREATE TABLE note (id INTEGER PRIMARY KEY, body TEXT);")  # fmt: skip
    with peersync.connect(db) as d:
        d.provision("t", ["note"])
    write(db, "INSERT INTO item VALUES (1, 'served', 1)")
    added = run("token", "add", str(db), "--scope", "s", "--rights", "write")
    tokens = {
        "write": added.stdout.splitlines()[-1],
        "read": run("token", "add", str(db), "--scope", "s", "--rights", "read").stdout.splitlines()[-1],
        "other": run("token", "add", str(db), "--scope", "t", "--rights", "write").stdout.splitlines()[-1],
    }
    server = servers(db, "--max-body", str(MAX_BODY), "--body-timeout", "1")
    return Guarded(server, db, tokens["write"], tokens["read"], tokens["other"], added.stdout)


def _client(g: Guarded, token: str | None) -> httpx.Client:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=g.server.url, headers=headers, timeout=10)


def _refused(response: httpx.Response, status: int, code: str, words: str = "") -> None:
    assert response.status_code == status, response.content
    assert response.headers["peersync-error"] == code
    err = codec.ERROR.decode(response.content)
    assert type(err).code == code and words in str(err) and "\n" not in str(err)


@pytest.fixture
def unchanged(guarded: Guarded) -> Iterator[None]:
    """The served database is the same, byte for byte of every row, after the test."""
    before = dump(guarded.db)
    yield
    assert dump(guarded.db) == before


# -- tokens ---------------------------------------------------------------------------------


def test_token_add_prints_the_token_alone_on_its_last_line_and_stores_only_a_hash(guarded: Guarded) -> None:
    lines = guarded.add_output.splitlines()
    assert lines == [guarded.write] and guarded.write.startswith("pst_")
    store = Path(str(guarded.db) + ".peersync-tokens").read_text()
    secret = guarded.write.split("_", 2)[2]
    assert guarded.write not in store and secret not in store
    assert hashlib.sha256(secret.encode()).hexdigest() in store
    listed = json.loads(run("token", "list", str(guarded.db), "--json").stdout)
    assert {t["rights"] for t in listed} == {"read", "write"} and guarded.write not in json.dumps(listed)
    assert all(set(t) == {"id", "scopes", "rights", "created"} for t in listed)


def test_health_needs_no_token(guarded: Guarded) -> None:
    r = httpx.get(guarded.server.url + "/health")
    assert r.status_code == 200 and r.json()["status"] == "ok" and r.json()["protocols"] == [1]


@pytest.mark.usefixtures("unchanged")
def test_a_missing_or_wrong_token_is_401(guarded: Guarded) -> None:
    wrong = guarded.write[:-4] + ("AAAA" if not guarded.write.endswith("AAAA") else "BBBB")
    for token in (None, wrong, "pst_00000000_" + "x" * 43, "not-a-token"):
        with _client(guarded, token) as c:
            _refused(c.get("/v1/scopes/s/describe"), 401, "access-denied")
            _refused(c.post("/v1/scopes/s/apply", content=b"x", headers={"content-type": "x"}), 401, "access-denied")
    with _client(guarded, None) as c:
        r = c.get("/v1/scopes/s/describe")
        assert r.headers["www-authenticate"].startswith("Bearer")
        _refused(c.get("/v1/scopes/s/describe", headers={"authorization": "Basic abc"}), 401, "access-denied", "Bearer")
    with peersync.connect(guarded.server.url) as remote, pytest.raises(peersync.AccessDenied, match="needs a token"):
        remote.describe("s")


@pytest.mark.usefixtures("unchanged")
def test_a_token_for_another_scope_is_403(guarded: Guarded) -> None:
    with _client(guarded, guarded.other) as c:
        _refused(c.get("/v1/scopes/s/describe"), 403, "access-denied", "does not grant scope 's'")
        assert c.get("/v1/scopes/t/describe").status_code == 200


def test_a_read_only_token_pulls_and_never_pushes(guarded: Guarded, folder: Path) -> None:
    laptop = make(folder / "readonly-laptop.db")
    write(laptop, "INSERT INTO item VALUES (500, 'from the laptop', 5)")
    before = dump(guarded.db)
    proc = run("sync", str(laptop), guarded.server.url, "--scope", "s", "--token", guarded.read, check=False)
    assert proc.returncode == 2 and "read-only" in proc.stderr
    assert dump(guarded.db) == before
    pulled = run("sync", str(laptop), guarded.server.url, "--scope", "s", "--direction", "pull", "--json",
                 extra_env={"PEERSYNC_TOKEN": guarded.read})  # fmt: skip
    assert json.loads(pulled.stdout)["sent_b_to_a"] >= 1
    assert (1, "served", 1) in items(laptop)


def test_status_lists_only_what_the_token_may_read(guarded: Guarded) -> None:
    def scopes(token: str | None) -> list[str]:
        with peersync.connect(guarded.server.url, token=token) as remote:
            return [st.scope for st in remote.status()]

    assert scopes(None) == []
    assert scopes(guarded.read) == ["s"]
    assert scopes(guarded.other) == ["t"]


def test_a_revoked_token_is_refused_at_once(guarded: Guarded) -> None:
    token = run("token", "add", str(guarded.db), "--scope", "s", "--rights", "read").stdout.splitlines()[-1]
    with _client(guarded, token) as c:
        assert c.get("/v1/scopes/s/describe").status_code == 200
        run("token", "revoke", str(guarded.db), token.split("_")[1])
        _refused(c.get("/v1/scopes/s/describe"), 401, "access-denied", "not valid")


def test_serve_refuses_an_open_scope_on_a_network_address(folder: Path) -> None:
    db = make(folder / "open.db")
    proc = run("serve", str(db), "--host", "0.0.0.0", "--port", "1", check=False)
    assert proc.returncode == 2 and "without a token on 0.0.0.0" in proc.stderr and "--insecure" in proc.stderr


# -- bodies ---------------------------------------------------------------------------------


def _laptop_batch(folder: Path, name: str, guarded: Guarded, schema: str | None = None) -> bytes:
    """A genuine batch from a new replica, of rows the server lacks."""
    laptop = make(folder / f"{name}.db", *([schema] if schema else []))
    write(laptop, *(f"INSERT INTO item VALUES ({900 + i}, 'new {i}', {i})" for i in range(3)))
    with peersync.connect(laptop) as db:
        info = db.describe("s")
        return db.changes("s", Knowledge.empty(), 0, info.tick, max_rows=100, max_bytes=1 << 20)


def _apply(c: httpx.Client, body: bytes, **headers: str) -> httpx.Response:
    return c.post(
        "/v1/scopes/s/apply", content=body, headers={"content-type": "application/vnd.peersync.batch"} | headers
    )


@pytest.mark.usefixtures("unchanged")
def test_malformed_truncated_and_forged_batches_are_400(guarded: Guarded, folder: Path) -> None:
    batch = _laptop_batch(folder, "forger", guarded)
    msg = msgpack.unpackb(batch, raw=False)
    with peersync.connect(guarded.db) as d:
        server_id = d.describe("s").replica_id

    def forged(i: int, value: object) -> bytes:
        m = list(msg)
        m[i] = value
        return bytes(msgpack.packb(m, use_bin_type=True))

    with _client(guarded, guarded.write) as c:
        _refused(_apply(c, b"\x00garbage"), 400, "protocol")
        for n in (1, 10, len(batch) // 2, len(batch) - 1):
            _refused(_apply(c, batch[:n]), 400, "protocol")
        _refused(_apply(c, batch + b"\x00"), 400, "protocol")
        m = list(msg)
        m[3], m[9] = server_id, [server_id, *m[9][1:]]
        _refused(_apply(c, msgpack.packb(m, use_bin_type=True)), 400, "protocol", "this very replica")
        _refused(_apply(c, forged(7, msg[7] + 1000)), 400, "protocol", "beyond the source's own knowledge")
        _refused(_apply(c, forged(2, "t")), 400, "protocol", "scope")
        _refused(_apply(c, forged(1, msg[1] + 1)), 400, "protocol")  # a format this version does not know
        # The fuzzer's find: a base time beyond 64 bits failed in SQL (500) instead of being refused.
        m = list(msg)
        m[10] = [[t[0], 2**64 - 1, t[2]] for t in m[10]]
        _refused(_apply(c, msgpack.packb(m, use_bin_type=True)), 400, "protocol", "bad rows for 'item'")
        _refused(
            c.post(
                "/v1/scopes/s/finish", content=b"\x93", headers={"content-type": "application/vnd.peersync+msgpack"}
            ),
            400,
            "protocol",
        )
        bad_request = msgpack.packb(["changes-request", 1, [], -1, 0, 1, 1])
        headers = {"content-type": "application/vnd.peersync+msgpack"}
        _refused(c.post("/v1/scopes/s/changes", content=bad_request, headers=headers), 400, "protocol", "after -1")


@pytest.mark.usefixtures("unchanged")
def test_a_batch_of_another_shape_is_409(guarded: Guarded, folder: Path) -> None:
    batch = _laptop_batch(
        folder, "other-shape", guarded, "CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT, qty TEXT);"
    )
    with _client(guarded, guarded.write) as c:
        _refused(_apply(c, batch), 409, "schema-mismatch")


@pytest.mark.usefixtures("unchanged")
def test_oversized_slow_and_badly_typed_bodies_are_refused(guarded: Guarded) -> None:
    with _client(guarded, guarded.write) as c:
        _refused(_apply(c, b"\x00" * (MAX_BODY + 1)), 413, "protocol", "exceeds the limit")
        bomb = gzip.compress(b"\x00" * (50 * MAX_BODY))
        assert len(bomb) < MAX_BODY
        _refused(_apply(c, bomb, **{"content-encoding": "gzip"}), 413, "protocol", "exceeds the limit")
        _refused(_apply(c, b"\x00", **{"content-encoding": "br"}), 415, "protocol", "content encoding")
        _refused(_apply(c, gzip.compress(b"abc")[:-3], **{"content-encoding": "gzip"}), 400, "protocol", "gzip")
        _refused(c.post("/v1/scopes/s/apply", content=b"x", headers={"content-type": "text/plain"}), 415, "protocol")
        _refused(c.get("/v1/scopes/s/apply"), 405, "protocol")
        _refused(c.get("/v2/scopes/s/describe"), 404, "protocol", "speaks protocol v1")
        _refused(c.get("/v1/scopes/s/conflicts", params={"limit": "0"}), 400, "configuration")
        nope = c.get("/v1/scopes/nope/describe")
        _refused(nope, 404, "scope", "unknown scope 'nope'")
        assert str(guarded.db) not in nope.text  # the server's paths are its own business
    # A body that stops arriving: 408 after --body-timeout (1 s here).
    host, port = "127.0.0.1", guarded.server.port
    with socket.create_connection((host, port), timeout=10) as s:
        s.sendall(
            b"POST /v1/scopes/s/apply HTTP/1.1\r\nHost: x\r\nContent-Type: application/vnd.peersync.batch\r\n"
            + f"Authorization: Bearer {guarded.write}\r\nContent-Length: 1000\r\n\r\n".encode()
            + b"\x9c"
        )
        start = time.monotonic()
        reply = s.recv(4096)
        assert reply.startswith(b"HTTP/1.1 408") and time.monotonic() - start < 5


def test_a_replayed_batch_changes_nothing(guarded: Guarded, folder: Path) -> None:
    batch = _laptop_batch(folder, "replayer", guarded)
    with _client(guarded, guarded.write) as c:
        first = _apply(c, batch)
        assert first.status_code == 200
        after_first = dump(guarded.db)
        for _ in range(3):
            again = _apply(c, batch)
            assert again.status_code == 200
            report = codec.APPLY_REPORT.decode(again.content)
            assert report.applied == 0 and report.skipped_known == 3
        assert dump(guarded.db) == after_first
