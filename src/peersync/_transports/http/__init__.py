"""peersync over HTTP: a served database (:mod:`.app`, :mod:`.runner`) and
the remote peer that talks to it (:mod:`.client`).

Importing this package registers the ``http`` and ``https`` schemes, so
``peersync.connect("http://host:8484")`` opens a remote peer.
"""

from __future__ import annotations

from peersync._engine.registry import register

from .client import HTTPPeer, open_http

__all__ = ["HTTPPeer", "open_http"]

register("http", open_http)
register("https", open_http)
