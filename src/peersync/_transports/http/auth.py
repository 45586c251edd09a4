"""Who may do what: a request's bearer token against the served scopes.

A scope with no token is open. Once it has one, a request for it needs a
valid token (else 401) that names the scope and grants the right the call
needs (else 403). A token that is presented but not valid is refused even
for an open scope: the caller is misconfigured and should hear it.
"""

from __future__ import annotations

from starlette.requests import Request

from peersync._engine.errors import AccessDenied

from .limits import Refusal
from .tokens import Right, Token, TokenStore


def presented(request: Request, store: TokenStore) -> Token | None:
    """The valid token the request carries, None if it carries none.
    Raises :class:`Refusal` (401) for a malformed header or a token not valid here."""
    header = request.headers.get("authorization")
    if header is None:
        return None
    kind, _, value = header.strip().partition(" ")
    if kind.lower() != "bearer" or not value.strip():
        raise Refusal(401, AccessDenied("malformed Authorization header: send 'Bearer <token>'"))
    token = store.check(value.strip())
    if token is None:
        raise Refusal(401, AccessDenied("the token is not valid on this server (unknown, revoked or mistyped)"))
    return token


def authorize(request: Request, store: TokenStore, scope: str, need: Right) -> None:
    """Refuse the request (:class:`Refusal`, 401 or 403) unless it may ``need`` ``scope``."""
    token = presented(request, store)
    if not store.guarded(scope):
        return
    if token is None:
        raise Refusal(401, AccessDenied(f"scope {scope!r} needs a token: pass --token or set PEERSYNC_TOKEN"))
    if scope not in token.scopes:
        raise Refusal(403, AccessDenied(f"token {token.id} does not grant scope {scope!r}"))
    if not token.right.allows(need):
        raise Refusal(403, AccessDenied(f"token {token.id} is read-only for scope {scope!r}: it can pull, not push"))


def readable(request: Request, store: TokenStore, scope: str) -> bool:
    """Whether the request may read ``scope`` (a presented token is already valid)."""
    token = presented(request, store)
    if not store.guarded(scope):
        return True
    return token is not None and scope in token.scopes
