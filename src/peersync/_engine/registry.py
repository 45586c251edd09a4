"""URL schemes to adapters: ``connect(url)`` looks the scheme up here.

An adapter registers an opener for its schemes when its module is imported.
The engine knows the built-in adapters only by module name, so it imports
none of them (nor their drivers) until a URL asks for one; a scheme whose
driver is not installed is refused with the extra that brings it.
"""

from __future__ import annotations

import importlib
import importlib.util
import ipaddress
import os
import urllib.parse
from collections.abc import Callable
from typing import Any

from .database import Database
from .errors import ConfigurationError, InvalidURL

Opener = Callable[..., Database]

_openers: dict[str, Opener] = {}

# scheme -> (module that registers it, pip extra that installs its driver)
_BUILTIN: dict[str, tuple[str, str | None]] = {
    "sqlite": ("peersync._adapters.sqlite", None),
    "memory": ("peersync._adapters.memory", None),
    "postgresql": ("peersync._adapters.postgres", "postgres"),
    "postgres": ("peersync._adapters.postgres", "postgres"),
    "mysql": ("peersync._adapters.mysql", "mysql"),
    "mariadb": ("peersync._adapters.mysql", "mysql"),
    "http": ("peersync._transports.http", None),
    "https": ("peersync._transports.http", None),
}


def register(scheme: str, opener: Opener) -> None:
    """Make ``connect("<scheme>://...")`` call ``opener(url, **options)``."""
    _openers[scheme.lower()] = opener


def scheme_of(url: str) -> str:
    """The URL's scheme, lower-cased; a plain path (no ``://``) is ``sqlite``."""
    if "://" not in url:
        return "sqlite"
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if not scheme:
        raise InvalidURL(f"not a database URL or path: {url!r}")
    return scheme


def is_known_scheme(scheme: str) -> bool:
    """Whether ``connect`` has an adapter for ``scheme`` (registered, or built in
    and part of this version), without importing it or its driver."""
    scheme = scheme.lower()
    return scheme in _openers or (scheme in _BUILTIN and _installed(scheme))


def open_url(url: str | os.PathLike[str], **options: Any) -> Database:
    """Open the database or remote peer that ``url`` names, by its scheme.

    Raises :class:`~peersync.InvalidURL` for an unknown scheme or a
    malformed URL, :class:`~peersync.ConfigurationError` when the scheme's
    driver is not installed, and whatever the adapter raises on opening.
    """
    if not isinstance(url, (str, os.PathLike)):
        raise InvalidURL(f"not a database path or URL: {url!r}")
    url = os.fspath(url)
    scheme = scheme_of(url)
    if scheme not in _openers and scheme in _BUILTIN:
        module, extra = _BUILTIN[scheme]
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name is not None and (exc.name == module or module.startswith(exc.name + ".")):
                pass  # that adapter is not written yet: unknown, below
            elif extra is not None:
                raise ConfigurationError(
                    f"{scheme}:// URLs need the {exc.name} driver: pip install 'peersync[{extra}]'"
                ) from exc
            else:
                raise
    opener = _openers.get(scheme)
    if opener is None:
        known = ", ".join(sorted(s + "://" for s in set(_openers) | {s for s in _BUILTIN if _installed(s)}))
        raise InvalidURL(f"unsupported database URL {url!r}: this version opens {known} and plain file paths")
    return opener(url, **options)


def _installed(scheme: str) -> bool:
    """Whether the built-in adapter of ``scheme`` is part of this version."""
    try:
        return importlib.util.find_spec(_BUILTIN[scheme][0]) is not None
    except ModuleNotFoundError:
        return False


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or address of a URL) is this machine's
    loopback: traffic to it never leaves the machine."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
