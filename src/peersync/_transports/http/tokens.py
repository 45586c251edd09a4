"""Bearer tokens: made once, stored as a hash, checked in constant time.

A token reads ``pst_<id>_<secret>``: ``id`` (8 hex digits) finds its record,
``secret`` (43 URL-safe characters, 256 random bits) proves it. The store
keeps per token its id, scopes, right and the SHA-256 of the secret, never
the secret itself: a leaked store grants nothing, and a fast hash is enough
for a secret of 256 random bits (no guessing to slow down).

The store is a JSON file beside the database (``shop.db`` ->
``shop.db.peersync-tokens``), written atomically (a temporary file renamed
over it) with mode 0600. A server reloads it when it changes, so
``peersync token add`` and ``revoke`` take effect without a restart.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import json
import os
import secrets
import tempfile
import time
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass

from peersync._engine.errors import ConfigurationError, StorageError

SUFFIX = ".peersync-tokens"
_PREFIX = "pst_"
_FORMAT = 1


class Right(enum.StrEnum):
    """What a token may do with its scopes; ``write`` includes ``read``."""

    READ = "read"
    WRITE = "write"

    def allows(self, needed: Right) -> bool:
        return self is Right.WRITE or needed is Right.READ


@dataclass(frozen=True)
class Token:
    """One stored token (its secret is not here: only its digest)."""

    id: str
    scopes: tuple[str, ...]
    right: Right
    digest: str  # hex SHA-256 of the secret
    created: int  # seconds since the epoch

    def public(self) -> dict[str, object]:
        return {"id": self.id, "scopes": list(self.scopes), "rights": self.right.value, "created": self.created}


def store_path(db: str) -> str:
    """The token file of database ``db`` (a path or ``sqlite:///`` URL);
    other databases name their token file explicitly."""
    if "://" in db:
        parts = urllib.parse.urlsplit(db)
        if parts.scheme.lower() != "sqlite":
            raise ConfigurationError(f"{db}: name the token file with --tokens FILE (only SQLite files have a default)")
        path = urllib.parse.unquote(parts.path)
        db = path[1:] if path.startswith("/") else path
    return os.path.abspath(db) + SUFFIX


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class TokenStore:
    """The tokens of one served database, in the file at ``path`` (None: a
    database without a token file, whose scopes are all open)."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self._stamp: tuple[int, int] | None = None
        self._tokens: dict[str, Token] = {}

    # -- reading ------------------------------------------------------------------

    def tokens(self) -> dict[str, Token]:
        """The tokens by id, reloaded when the file changed since the last call."""
        if self.path is None:
            return {}
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            self._stamp, self._tokens = None, {}
            return self._tokens
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp != self._stamp:
            self._tokens = self._load()
            self._stamp = stamp
        return self._tokens

    def _load(self) -> dict[str, Token]:
        assert self.path is not None
        try:
            with open(self.path, encoding="utf-8") as f:
                doc = json.load(f)
            if doc.get("format") != _FORMAT:
                raise ValueError(f"unknown format {doc.get('format')!r}")
            out = {}
            for t in doc["tokens"]:
                tok = Token(t["id"], tuple(t["scopes"]), Right(t["rights"]), t["digest"], int(t["created"]))
                out[tok.id] = tok
            return out
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise StorageError(f"token file {self.path} is unreadable: {exc}") from exc

    def guarded(self, scope: str) -> bool:
        """Whether ``scope`` has a token (then every request for it needs one)."""
        return any(scope in t.scopes for t in self.tokens().values())

    def check(self, presented: str) -> Token | None:
        """The token ``presented`` proves, or None. The secret is compared in
        constant time; an unknown id costs the same digest and comparison."""
        body = presented[len(_PREFIX) :] if presented.startswith(_PREFIX) else ""
        tid, _, secret = body.partition("_")
        token = self.tokens().get(tid)
        expected = token.digest if token is not None else "0" * 64
        ok = hmac.compare_digest(_digest(secret).encode(), expected.encode())
        return token if ok and token is not None and secret else None

    # -- managing (on the server's host) -----------------------------------------

    def add(self, scopes: Sequence[str], right: Right) -> tuple[Token, str]:
        """A new token for ``scopes``: its record and the token string, which
        exists nowhere else and cannot be shown again."""
        if self.path is None:
            raise ConfigurationError("this database has no token file: name one with --tokens FILE")
        if not scopes:
            raise ConfigurationError("a token needs at least one --scope")
        tokens = dict(self.tokens())
        tid = secrets.token_hex(4)
        while tid in tokens:
            tid = secrets.token_hex(4)
        secret = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
        token = Token(tid, tuple(dict.fromkeys(scopes)), right, _digest(secret), int(time.time()))
        tokens[tid] = token
        self._save(tokens)
        return token, f"{_PREFIX}{tid}_{secret}"

    def revoke(self, tid: str) -> Token:
        tokens = dict(self.tokens())
        token = tokens.pop(tid, None)
        if token is None:
            raise ConfigurationError(f"no token {tid!r} in {self.path}")
        self._save(tokens)
        return token

    def _save(self, tokens: dict[str, Token]) -> None:
        assert self.path is not None
        records = [
            {"id": t.id, "scopes": list(t.scopes), "rights": t.right.value, "digest": t.digest, "created": t.created}
            for t in tokens.values()
        ]
        doc = {"format": _FORMAT, "tokens": records}
        folder = os.path.dirname(self.path) or "."
        try:
            fd, tmp = tempfile.mkstemp(prefix=".tokens-", dir=folder)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as f:
                    json.dump(doc, f, indent=1)
                    f.flush()
                    os.fsync(f.fileno())
                os.chmod(tmp, 0o600)
                os.replace(tmp, self.path)
            except BaseException:
                os.unlink(tmp)
                raise
        except OSError as exc:
            raise StorageError(f"cannot write token file {self.path}: {exc}") from exc
        self._stamp = None
