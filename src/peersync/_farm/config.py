"""A farm's configuration: the servers, the links between them, what to sync
and how often, read from a TOML file and checked whole before anything runs.

::

    interval = 5            # seconds between two rounds of a link
    scopes = ["shop"]       # or: scope = "shop"
    topology = "ring"       # "ring" (in the order the servers are listed),
                            # "mesh" (every pair), or links = [["a", "b"], ...]

    [servers.a]
    url = "http://10.0.0.1:8484"
    token_env = "FARM_TOKEN_A"   # the token is read from this variable...

    [servers.b]
    url = "https://10.0.0.2:8484"
    token = "pst_..."            # ...or written here
    ca = "ca.pem"                # relative to the file

Optional: ``backoff`` (first wait after a failed round, 1 s), ``max_backoff``
(its cap, 60 s), ``batch_size``, ``batch_bytes``, ``policy`` (for a member that
is a database here; a served one resolves by its own), ``lock_timeout``.
A link may be a table, ``{between = ["a", "b"], scopes = ["x"]}``, to sync
other scopes than the farm's. Anything else (an unknown key, a wrong type, an
unknown server, a variable that is not set) raises
:class:`~peersync.ConfigurationError` naming the file and the key.
"""

from __future__ import annotations

import math
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from peersync._engine.errors import ConfigurationError, InvalidURL
from peersync._engine.model import Policy
from peersync._engine.registry import is_known_scheme, scheme_of
from peersync._engine.session import DEFAULT_BATCH_BYTES, DEFAULT_BATCH_ROWS, MAX_BATCH

__all__ = ["FarmConfig", "Link", "Server", "load_config", "parse_config"]

_REMOTE = ("http", "https")
_TOP = {
    "interval", "scope", "scopes", "topology", "links", "servers", "backoff", "max_backoff",
    "batch_size", "batch_bytes", "policy", "lock_timeout",
}  # fmt: skip
_SERVER = {"url", "token", "token_env", "ca"}
_LINK = {"between", "scope", "scopes"}


@dataclass(frozen=True)
class Server:
    """One member of the farm: a served peer (``http(s)://``) or any database
    URL or path that :func:`peersync.connect` opens."""

    name: str
    url: str
    token: str | None = None
    ca: str | None = None

    @property
    def remote(self) -> bool:
        return scheme_of(self.url) in _REMOTE

    def __repr__(self) -> str:  # never print a token
        return f"Server({self.name!r}, {self.url!r})"


@dataclass(frozen=True)
class Link:
    """Two servers kept in sync, both ways, over ``scopes``."""

    a: str
    b: str
    scopes: tuple[str, ...]

    @property
    def name(self) -> str:
        return f"{self.a}<->{self.b}"


@dataclass(frozen=True)
class FarmConfig:
    servers: tuple[Server, ...]
    links: tuple[Link, ...]
    interval: float = 10.0
    backoff: float = 1.0
    max_backoff: float = 60.0
    batch_size: int = DEFAULT_BATCH_ROWS
    batch_bytes: int = DEFAULT_BATCH_BYTES
    policy: Policy = Policy.LAST_WRITER_WINS
    lock_timeout: float = 5.0

    def __post_init__(self) -> None:
        """A config built by hand is held to what the file is: known servers
        linked, positive waits. Raises :class:`~peersync.ConfigurationError`."""
        names = [s.name for s in self.servers]
        if len(set(names)) != len(names):
            raise ConfigurationError("two servers have the same name")
        if not self.links:
            raise ConfigurationError("a farm needs at least one link")
        for link in self.links:
            for n in (link.a, link.b):
                if n not in names:
                    raise ConfigurationError(f"the link {link.name} names the server {n!r}, which is not in servers")
            if not link.scopes:
                raise ConfigurationError(f"the link {link.name} has no scope")
        if not 0 < self.backoff <= self.max_backoff or not self.interval > 0:
            raise ConfigurationError("interval and backoff must be above 0, and backoff at most max_backoff")

    def server(self, name: str) -> Server:
        return next(s for s in self.servers if s.name == name)


def load_config(path: str | os.PathLike[str], environ: dict[str, str] | None = None) -> FarmConfig:
    """Read and check the farm file at ``path``; tokens named by ``token_env``
    come from ``environ`` (default: this process's environment). Relative
    paths in it (``ca``, SQLite files) are taken from the file's folder.
    Raises :class:`~peersync.ConfigurationError`, with the file's name."""
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigurationError(f"cannot read the farm file {p}: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"{p}: not valid TOML: {exc}") from None
    try:
        return parse_config(data, base=p.resolve().parent, environ=environ)
    except ConfigurationError as exc:
        raise type(exc)(f"{p}: {exc}") from None


def parse_config(
    data: dict[str, Any], *, base: Path | None = None, environ: dict[str, str] | None = None
) -> FarmConfig:
    """A :class:`FarmConfig` from a parsed TOML document (see the module's
    docstring for the keys). Raises :class:`~peersync.ConfigurationError`."""
    env = os.environ if environ is None else environ
    _no_unknown(data, _TOP, "the file")
    servers = _servers(data.get("servers"), base, env)
    names = [s.name for s in servers]
    scopes = _scopes(data, "the file")
    links = _links(data, names, scopes)
    policy = data.get("policy", Policy.LAST_WRITER_WINS.value)
    if not isinstance(policy, str) or policy not in {p.value for p in Policy}:
        raise ConfigurationError(f"policy must be one of {', '.join(p.value for p in Policy)}, not {policy!r}")
    interval = _seconds(data, "interval", 10.0)
    backoff = _seconds(data, "backoff", 1.0)
    max_backoff = _seconds(data, "max_backoff", max(60.0, backoff))
    if max_backoff < backoff:
        raise ConfigurationError(f"max_backoff ({max_backoff:g}) is below backoff ({backoff:g})")
    return FarmConfig(
        servers=servers,
        links=links,
        interval=interval,
        backoff=backoff,
        max_backoff=max_backoff,
        batch_size=_count(data, "batch_size", DEFAULT_BATCH_ROWS, 1),
        batch_bytes=_count(data, "batch_bytes", DEFAULT_BATCH_BYTES, 1024),
        policy=Policy(policy),
        lock_timeout=_seconds(data, "lock_timeout", 5.0, zero=True),
    )


def _no_unknown(table: dict[str, Any], known: set[str], where: str) -> None:
    unknown = sorted(set(table) - known)
    if unknown:
        raise ConfigurationError(f"unknown key {unknown[0]!r} in {where} (known: {', '.join(sorted(known))})")


def _seconds(data: dict[str, Any], key: str, default: float, *, zero: bool = False) -> float:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigurationError(f"{key} must be a number of seconds, not {value!r}")
    if value < 0 or (value == 0 and not zero):
        raise ConfigurationError(f"{key} must be {'at least 0' if zero else 'above 0'} seconds, not {value!r}")
    return float(value)


def _count(data: dict[str, Any], key: str, default: int, least: int) -> int:
    value = data.get(key, default)
    if type(value) is not int or not least <= value <= MAX_BATCH:
        raise ConfigurationError(f"{key} must be a whole number from {least} to {MAX_BATCH}, not {value!r}")
    return value


def _servers(table: object, base: Path | None, env: os._Environ[str] | dict[str, str]) -> tuple[Server, ...]:
    if table is None:
        raise ConfigurationError('no [servers]: name at least two, e.g. [servers.a] url = "http://host:8484"')
    if not isinstance(table, dict):
        raise ConfigurationError("servers must be tables: [servers.NAME] with url = ...")
    out: list[Server] = []
    for name, entry in table.items():
        where = f"[servers.{name}]"
        if not isinstance(entry, dict):
            raise ConfigurationError(f"{where} must be a table with url = ...")
        _no_unknown(entry, _SERVER, where)
        url = entry.get("url")
        if not isinstance(url, str) or not url:
            raise ConfigurationError(f'{where} needs url = "http://host:port" (or a database URL or path)')
        try:
            scheme = scheme_of(url)
        except InvalidURL as exc:
            raise ConfigurationError(f"{where}: {exc}") from None
        if not is_known_scheme(scheme):
            raise ConfigurationError(f"{where}: unsupported URL {url!r}")
        if scheme == "sqlite" and "://" not in url and base is not None:
            url = str(base / url)
        token = _token(entry, where, env)
        ca = entry.get("ca")
        if ca is not None and (not isinstance(ca, str) or not ca):
            raise ConfigurationError(f"{where}: ca must be a file name")
        if (token is not None or ca is not None) and scheme not in _REMOTE:
            raise ConfigurationError(f"{where}: token and ca apply only to an http(s):// server, not {url!r}")
        if ca is not None and base is not None:
            ca = str(base / ca)
        out.append(Server(name, url, token, ca))
    if len(out) < 2:
        raise ConfigurationError(f"a farm needs at least two servers, not {len(out)}")
    urls = [s.url for s in out]
    for s in out:
        if urls.count(s.url) > 1:
            raise ConfigurationError(f"two servers have the same url {s.url!r}")
    return tuple(out)


def _token(entry: dict[str, Any], where: str, env: os._Environ[str] | dict[str, str]) -> str | None:
    token, var = entry.get("token"), entry.get("token_env")
    if token is not None and var is not None:
        raise ConfigurationError(f"{where}: give token or token_env, not both")
    if var is not None:
        if not isinstance(var, str) or not var:
            raise ConfigurationError(f"{where}: token_env must name an environment variable")
        token = env.get(var)
        if not token:
            raise ConfigurationError(f"{where}: the environment variable {var} (token_env) is not set")
    if token is not None and (not isinstance(token, str) or not token):
        raise ConfigurationError(f"{where}: token must be a string")
    return token


def _scopes(table: dict[str, Any], where: str) -> tuple[str, ...] | None:
    one, many = table.get("scope"), table.get("scopes")
    if one is not None and many is not None:
        raise ConfigurationError(f"{where}: give scope or scopes, not both")
    if one is not None:
        many = [one]
    if many is None:
        return None
    if not isinstance(many, list) or not many or not all(isinstance(s, str) and s for s in many):
        raise ConfigurationError(f"{where}: scopes must be a list of scope names")
    if len(set(many)) != len(many):
        raise ConfigurationError(f"{where}: a scope is named twice")
    return tuple(many)


def _links(data: dict[str, Any], names: list[str], scopes: tuple[str, ...] | None) -> tuple[Link, ...]:
    topology, explicit = data.get("topology"), data.get("links")
    if (topology is None) == (explicit is None):
        raise ConfigurationError('give topology = "ring" or "mesh", or links = [["a", "b"], ...], and only one')
    pairs: list[tuple[str, str, tuple[str, ...] | None]] = []
    if topology is not None:
        if topology == "ring":
            ring = list(zip(names, names[1:] + names[:1], strict=True))
            pairs = [(a, b, None) for a, b in (ring[:1] if len(names) == 2 else ring)]
        elif topology == "mesh":
            pairs = [(a, b, None) for i, a in enumerate(names) for b in names[i + 1 :]]
        else:
            raise ConfigurationError(f'topology must be "ring" or "mesh", not {topology!r}')
    else:
        if not isinstance(explicit, list) or not explicit:
            raise ConfigurationError('links must be a list of pairs, e.g. links = [["a", "b"], ["b", "c"]]')
        for entry in explicit:
            pairs.append(_pair(entry, names))
    seen: set[frozenset[str]] = set()
    links: list[Link] = []
    for a, b, own in pairs:
        if frozenset((a, b)) in seen:
            raise ConfigurationError(f"the link {a} <-> {b} is given twice")
        seen.add(frozenset((a, b)))
        chosen = own if own is not None else scopes
        if chosen is None:
            raise ConfigurationError(f'no scope for the link {a} <-> {b}: add scopes = ["..."] to the file')
        links.append(Link(a, b, chosen))
    return tuple(links)


def _pair(entry: object, names: list[str]) -> tuple[str, str, tuple[str, ...] | None]:
    own: tuple[str, ...] | None = None
    if isinstance(entry, dict):
        _no_unknown(entry, _LINK, "a link")
        own = _scopes(entry, "a link")
        entry = entry.get("between")
    if not isinstance(entry, list) or len(entry) != 2 or not all(isinstance(n, str) for n in entry):
        raise ConfigurationError(f'a link is a pair of server names, ["a", "b"], not {entry!r}')
    a, b = entry
    for n in (a, b):
        if n not in names:
            raise ConfigurationError(f"a link names the server {n!r}, which is not in [servers] ({', '.join(names)})")
    if a == b:
        raise ConfigurationError(f"a link joins {a!r} to itself")
    return a, b, own
