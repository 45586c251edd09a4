"""peersync: multi-master, peer-to-peer synchronization of relational databases.

>>> import peersync  # doctest: +SKIP
>>> with peersync.connect("a.db") as a, peersync.connect("b.db") as b:  # doctest: +SKIP
...     a.provision("shop", ["customers", "orders"])
...     b.provision("shop", ["customers", "orders"])
...     result = peersync.sync(a, b, "shop")
"""

from ._adapters.sql.names_file import load_names
from ._api import clone, conflicts, connect, deprovision, provision, status
from ._engine.database import Database
from ._engine.errors import (
    AccessDenied,
    ConfigurationError,
    DatabaseLocked,
    InvalidURL,
    ProtocolError,
    RepairNeeded,
    ReplicaOutdated,
    SchemaMismatch,
    ScopeError,
    StorageError,
    SyncError,
    TableError,
    TransportError,
)
from ._engine.knowledge import Knowledge, Version
from ._engine.model import (
    Conflict,
    ConflictType,
    Direction,
    Outcome,
    Policy,
    RawText,
    RepairReport,
    Resolution,
    Status,
)
from ._engine.names import Names
from ._engine.peer import Peer
from ._engine.progress import BatchApplied, ProgressEvent, SessionEnded, SessionStarted
from ._engine.results import SessionStats, SyncResult
from ._engine.session import run_session, sync

__version__ = "0.1.0"

__all__ = [
    "AccessDenied",
    "BatchApplied",
    "ConfigurationError",
    "Conflict",
    "ConflictType",
    "Database",
    "DatabaseLocked",
    "Direction",
    "InvalidURL",
    "Knowledge",
    "Names",
    "Outcome",
    "Peer",
    "Policy",
    "ProgressEvent",
    "ProtocolError",
    "RawText",
    "RepairNeeded",
    "RepairReport",
    "ReplicaOutdated",
    "Resolution",
    "SchemaMismatch",
    "ScopeError",
    "SessionEnded",
    "SessionStarted",
    "SessionStats",
    "Status",
    "StorageError",
    "SyncError",
    "SyncResult",
    "TableError",
    "TransportError",
    "Version",
    "__version__",
    "clone",
    "conflicts",
    "connect",
    "deprovision",
    "load_names",
    "provision",
    "run_session",
    "status",
    "sync",
]
