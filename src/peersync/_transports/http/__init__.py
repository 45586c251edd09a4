"""peersync over HTTP: a served database (:mod:`.app`, :mod:`.runner`) and
the remote peer that talks to it (:mod:`.client`).

Importing this package registers the ``http`` and ``https`` schemes, so
``peersync.connect("http://host:8484")`` opens a remote peer. The client and
its HTTP library load on the first such URL: a command that only reads a
token store or syncs two local files does not pay for them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from peersync._engine.database import Database
from peersync._engine.registry import register

if TYPE_CHECKING:
    from .client import HTTPPeer

__all__ = ["HTTPPeer", "open_http"]


def open_http(url: str, **options: Any) -> Database:
    """Open the served peer at ``url`` (see :func:`.client.open_http`)."""
    from .client import open_http as open_client

    return open_client(url, **options)


def __getattr__(name: str) -> Any:
    if name == "HTTPPeer":
        from .client import HTTPPeer

        return HTTPPeer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


register("http", open_http)
register("https", open_http)
