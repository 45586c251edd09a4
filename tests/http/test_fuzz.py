"""A fuzzer against a real server: at least 1000 random bodies, spread over
every endpoint, with random content types and encodings. None may get a
5xx, and none may change the served database (rows, tracking, knowledge,
sessions, conflict log: every table compared after every request).

Bodies are random bytes, random msgpack, arrays headed like each message
kind with random fields, and bit-level mutations of genuine requests whose
effect is already in the database (a replayed batch, a read), so that a
mutation that still decodes also changes nothing."""

from __future__ import annotations

import gzip
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import peersync
from peersync import Knowledge
from peersync._engine import codec

from ..helpers import write
from .conftest import Server, dump, make, run

MESSAGE, BATCH = "application/vnd.peersync+msgpack", "application/vnd.peersync.batch"
KINDS = ["changes-request", "session-end", "knowledge", "policy", "peersync-batch", "batch-stream", "error", "x"]


@dataclass
class Target:
    server: Server
    db: Path
    token: str
    valid: dict[str, bytes]  # endpoint -> a genuine body whose effect is already in the database


@pytest.fixture(scope="module")
def target(folder: Path, servers: Callable[..., Server]) -> Target:
    db = make(folder / "fuzzed.db")
    write(db, *(f"INSERT INTO item VALUES ({i}, 'row {i}', {i})" for i in range(5)))
    token = run("token", "add", str(db), "--scope", "s", "--rights", "write").stdout.splitlines()[-1]
    server = servers(db, "--body-timeout", "5")
    laptop = make(folder / "fuzz-laptop.db")
    write(laptop, *(f"INSERT INTO item VALUES ({100 + i}, 'laptop {i}', {i})" for i in range(3)))
    with peersync.connect(laptop) as a, peersync.connect(server.url, token=token) as b:
        info = a.describe("s")
        batch = a.changes("s", Knowledge.empty(), 0, info.tick, max_rows=100, max_bytes=1 << 20)
        b.apply("s", batch, peersync.Policy.LAST_WRITER_WINS)  # from now on, replaying it is a no-op
        known = b.describe("s").knowledge
    request = codec.CHANGES_REQUEST.encode(codec.ChangesRequest(known, 0, 10, 100, 1 << 20))
    return Target(server, db, token, {"apply": batch, "changes": request, "batches": request})


ENDPOINTS = [
    ("POST", "/v1/scopes/s/apply", BATCH),
    ("POST", "/v1/scopes/s/finish", MESSAGE),
    ("POST", "/v1/scopes/s/changes", MESSAGE),
    ("POST", "/v1/scopes/s/batches", MESSAGE),
    ("GET", "/v1/scopes/s/describe", None),
    ("GET", "/v1/scopes/s/schemas", None),
    ("GET", "/v1/scopes/s/status", None),
    ("GET", "/v1/scopes/s/conflicts", None),
    ("GET", "/v1/status", None),
    ("GET", "/health", None),
]

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**64), 2**64 - 1),
    st.floats(),
    st.text(max_size=40),
    st.binary(max_size=40),
)
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=6), max_leaves=30)


def _pack(v: object) -> bytes:
    try:
        return bytes(msgpack.packb(v, use_bin_type=True))
    except (OverflowError, ValueError):
        return b"\xc1"  # never valid msgpack


@st.composite
def mutated(draw: st.DrawFn, data: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate"]))
        at = draw(st.integers(0, max(len(out) - 1, 0)))
        if op == "flip" and out:
            out[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "set" and out:
            out[at] = draw(st.integers(0, 255))
        elif op == "insert":
            out[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete" and out:
            del out[at : at + draw(st.integers(1, 8))]
        elif op == "truncate":
            del out[at:]
    return bytes(out)


@st.composite
def requests(draw: st.DrawFn, valid: dict[str, bytes]) -> tuple[str, str, bytes, dict[str, str]]:
    method, path, content_type = draw(st.sampled_from(ENDPOINTS))
    name = path.rsplit("/", 1)[1]
    sources = [
        st.binary(max_size=600),
        VALUES.map(_pack),
        st.tuples(st.sampled_from(KINDS), st.sampled_from([1, 1, 1, 0, 2]), st.lists(VALUES, max_size=12)).map(
            lambda t: _pack([t[0], t[1], *t[2]])
        ),
    ]
    if name in valid:
        sources.append(mutated(valid[name]))
    body = draw(st.one_of(sources))
    headers = {}
    choice = draw(st.integers(0, 9))
    if content_type is not None or choice == 0:
        headers["content-type"] = (
            content_type if content_type and choice > 1 else draw(st.sampled_from([MESSAGE, BATCH, "text/plain", ""]))
        )
    if choice == 9:
        body = gzip.compress(body)
        headers["content-encoding"] = "gzip"
    elif choice == 8:
        headers["content-encoding"] = draw(st.sampled_from(["gzip", "deflate", "x"]))
    if name == "apply" and choice == 7:  # a session id that is not one: refused before anything is read
        headers["peersync-finish"] = draw(
            st.one_of(st.text(alphabet="0123456789abcdefABCDEF-", max_size=40), st.just("0" * 33)).filter(
                lambda v: not re.fullmatch("[0-9a-f]{32}", v)
            )
        )
    if path.endswith("conflicts") and draw(st.booleans()):
        path += "?limit=" + draw(st.text(alphabet="0123456789-x", max_size=8))
    return method, path, body, headers


@pytest.fixture(scope="module")
def client(target: Target) -> httpx.Client:
    return httpx.Client(base_url=target.server.url, headers={"authorization": f"Bearer {target.token}"}, timeout=30)


def _send_valid(target: Target, client: httpx.Client) -> None:
    for name, body in target.valid.items():
        ct = BATCH if name == "apply" else MESSAGE
        assert client.post(f"/v1/scopes/s/{name}", content=body, headers={"content-type": ct}).status_code == 200


@pytest.fixture(scope="module")
def baseline(target: Target, client: httpx.Client) -> list[tuple[object, ...]]:
    """The database after the valid bodies were sent once: a mutation that
    happens to leave a valid body whole (no change at all) then replays one,
    which must change nothing, on whichever worker this module's tests run."""
    _send_valid(target, client)
    return dump(target.db)


def test_the_fuzzer_starts_from_bodies_the_server_accepts(target: Target, client: httpx.Client) -> None:
    # Otherwise the mutations below would only ever test the outer checks.
    _send_valid(target, client)


@settings(max_examples=1200, deadline=None, suppress_health_check=list(HealthCheck), derandomize=False)
@given(data=st.data())
def test_random_bodies_never_get_a_5xx_nor_change_anything(
    target: Target, client: httpx.Client, baseline: list[tuple[object, ...]], data: st.DataObject
) -> None:
    method, path, body, headers = data.draw(requests(target.valid))
    r = client.request(method, path, content=body if method == "POST" else None, headers=headers)
    assert r.status_code < 500, (r.status_code, r.content[:300])
    if r.status_code >= 400:
        assert r.headers["peersync-error"] and "\n" not in codec.ERROR.decode(r.content).args[0]
    assert dump(target.db) == baseline
