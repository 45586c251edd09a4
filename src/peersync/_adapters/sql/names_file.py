"""Reading a names file (TOML) into :class:`~peersync.Names`: the I/O the
engine leaves to the adapters."""

from __future__ import annotations

import os
from collections.abc import Mapping

from peersync._engine.errors import ConfigurationError
from peersync._engine.names import Names, NamesArg


def load_names(source: NamesArg) -> Names:
    """Names from a :class:`Names`, a mapping in the TOML shape, or the path
    of a TOML file. Raises :class:`~peersync.ConfigurationError` for a file
    that cannot be read or is not TOML, and for a malformed mapping."""
    if source is None:
        return Names()
    if isinstance(source, Names):
        return source
    if isinstance(source, (str, os.PathLike)):
        import tomllib  # here: most commands read no names file

        path = os.fspath(source)
        try:
            with open(path, "rb") as f:
                data = tomllib.load(f)
        except OSError as exc:
            raise ConfigurationError(f"cannot read names file {path}: {exc.strerror or exc}") from exc
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigurationError(f"names file {path} is not TOML: {exc}") from exc
        return Names.from_mapping(data, f"names file {path}")
    if isinstance(source, Mapping):
        return Names.from_mapping(source)
    raise ConfigurationError(f"names are a mapping or a TOML file's path, not {type(source).__name__}")
