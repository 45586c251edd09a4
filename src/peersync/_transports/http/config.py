"""What a server serves and how (:class:`ServerConfig`), and what its routes
share while it runs (:class:`State`)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import peersync
from peersync._engine.errors import ConfigurationError, ScopeError
from peersync._engine.model import Policy

from .finals import FinalLedger
from .limits import Limits, Refusal
from .media import PROTOCOL
from .pool import Pool
from .tokens import TokenStore, store_path


@dataclass(frozen=True)
class ServerConfig:
    """What a server serves and how.

    ``database`` is a URL or path for :func:`peersync.connect`; ``scopes``
    limits what is served (None: every scope of the database); ``policy``
    resolves every conflict of a batch applied here; ``tokens`` is the token
    file (default: beside a SQLite file; see :mod:`.tokens`); ``timeout`` is
    the database lock wait; ``connections`` how many database connections
    serve requests at once.
    """

    database: str
    scopes: tuple[str, ...] | None = None
    policy: Policy = Policy.LAST_WRITER_WINS
    tokens: str | None = None
    limits: Limits = field(default_factory=Limits)
    timeout: float = 5.0
    connections: int = 4

    def token_file(self) -> str | None:
        if self.tokens is not None:
            return self.tokens
        try:
            return store_path(self.database)
        except ConfigurationError:
            return None  # a database without a default token file: no tokens


@dataclass
class State:
    """What the routes share: the config, the connections, the tokens and the
    final batches applied (which ``finish`` may merge)."""

    config: ServerConfig
    pool: Pool
    tokens: TokenStore
    scrub: tuple[str, str] | None = None
    finals: FinalLedger = field(default_factory=FinalLedger)

    def served(self, scope: str) -> None:
        if self.config.scopes is not None and scope not in self.config.scopes:
            raise Refusal(404, ScopeError(f"scope {scope!r} is not served here"))


def health_body() -> bytes:
    return json.dumps({"status": "ok", "protocols": [PROTOCOL], "version": peersync.__version__}).encode()
