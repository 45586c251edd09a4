"""``serve --cert/--key`` serves https; clients verify the certificate,
against a private CA with ``--ca``, and refuse an untrusted one at once."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import peersync

from ..helpers import write
from .conftest import Server, items, make, run


def _pki(folder: Path) -> tuple[Path, Path, Path]:
    """A private CA and a certificate for 127.0.0.1 that it signed."""
    ca_key, ca, key, csr, cert = (folder / n for n in ("ca.key", "ca.pem", "server.key", "server.csr", "server.pem"))
    ext = folder / "san.cnf"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")

    def ssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    ssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key), "-out", str(ca), "-days", "2",
        "-subj", "/CN=peersync test CA")  # fmt: skip
    ssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr), "-subj", "/CN=127.0.0.1")
    ssl("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial", "-out", str(cert),
        "-days", "2", "-extfile", str(ext))  # fmt: skip
    return ca, cert, key


@pytest.fixture(scope="module")
def tls_server(folder: Path) -> Iterator[tuple[Server, Path]]:
    ca, cert, key = _pki(folder)
    served = make(folder / "tls-served.db")
    write(served, "INSERT INTO item VALUES (1, 'over tls', 1)")
    s = Server(served, "--cert", str(cert), "--key", str(key), ca=str(ca)).start()
    yield s, ca
    s.stop()


def test_a_client_syncs_over_https_with_a_private_ca(tls_server: tuple[Server, Path], folder: Path) -> None:
    server, ca = tls_server
    assert server.url.startswith("https://")
    laptop = make(folder / "tls-laptop.db")
    r = json.loads(run("sync", str(laptop), server.url, "--scope", "s", "--ca", str(ca), "--json").stdout)
    assert r["sent_b_to_a"] == 1 and items(laptop) == [(1, "over tls", 1)]


def test_an_untrusted_certificate_is_refused_without_retrying(tls_server: tuple[Server, Path]) -> None:
    server, _ = tls_server
    with peersync.connect(server.url) as remote, pytest.raises(peersync.TransportError, match="not trusted"):
        remote.describe("s")
    proc = run("status", server.url, check=False)
    assert proc.returncode == 2 and "--ca FILE" in proc.stderr


def test_https_to_a_plain_http_server_is_refused_without_retrying(
    servers: Callable[..., Server], folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plain = servers(make(folder / "plain.db"))
    https = "https" + plain.url[len("http") :]
    waits: list[float] = []
    monkeypatch.setattr(time, "sleep", waits.append)  # a retry would wait first
    with peersync.connect(https) as remote, pytest.raises(peersync.TransportError) as exc:
        remote.describe("s")
    assert "TLS handshake failed" in str(exc.value) and "http://" in str(exc.value)
    assert waits == []


def test_tls_needs_both_cert_and_key(folder: Path) -> None:
    served = make(folder / "half-tls.db")
    # any existing file will do as the certificate: the key is what is missing
    proc = run("serve", str(served), "--cert", str(served), check=False)
    assert proc.returncode == 2 and "both --cert and --key" in proc.stderr


def test_a_plain_http_peer_loads_no_certificates_and_an_https_peer_still_does(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Loading the CA bundle costs about 0.1 s per process: an ``http://``
    peer never uses it. An ``https://`` peer still verifies against it."""
    import ssl

    loaded: list[object] = []
    load = ssl.SSLContext.load_verify_locations

    def counted(self: ssl.SSLContext, *args: object, **kwargs: object) -> None:
        loaded.append(args or kwargs)
        load(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(ssl.SSLContext, "load_verify_locations", counted)
    with peersync.connect("http://127.0.0.1:9"):
        pass
    assert loaded == []
    with peersync.connect("https://127.0.0.1:9"):
        pass
    assert len(loaded) >= 1


def test_the_context_of_a_plain_http_peer_trusts_no_certificate() -> None:
    """Should a TLS handshake ever go through it, it fails closed."""
    import ssl

    from peersync._transports.http.client import _tls_context

    ctx = _tls_context("http://127.0.0.1:9", None)
    assert isinstance(ctx, ssl.SSLContext)
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    assert ctx.get_ca_certs() == []
    assert _tls_context("https://127.0.0.1:9", None) is True
