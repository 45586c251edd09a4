"""The in-memory reference peer (``memory://NAME``): the model's executable spec."""

from .peer import SCHEME, MemoryPeer, drop_memory, open_memory

__all__ = ["SCHEME", "MemoryPeer", "drop_memory", "open_memory"]
