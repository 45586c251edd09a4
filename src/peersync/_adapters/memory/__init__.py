"""The in-memory reference peer: the model's executable spec. Registers the
``memory`` scheme (``memory://NAME``: one database per name in this process)."""

from peersync._engine.registry import register

from .peer import SCHEME, MemoryPeer, drop_memory, open_memory, open_memory_url

__all__ = ["SCHEME", "MemoryPeer", "drop_memory", "open_memory", "open_memory_url"]

register(SCHEME, open_memory_url)
