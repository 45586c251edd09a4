"""Strict codecs for every argument and result of the Peer contract, so each
call can cross a wire (batches themselves are :mod:`peersync._engine.wire`'s).

Each message is a :class:`Message` (``codec.KNOWLEDGE.encode(k)``,
``codec.KNOWLEDGE.decode(data)``; the policy is encoded by
:func:`encode_policy`, which refuses a callback). Every message is one
msgpack array that starts with its kind and the format version, then its
fields in a fixed order (plain msgpack types only; a TEXT value that is not
UTF-8 is ext type 1, as in a batch)::

    ["knowledge", 1, K]
    ["table-schema", 1, *S]
    ["schemas", 1, [S, ...]]                  the result of Peer.schemas
    ["replica-info", 1, scope, replica_id, tick, knowledge K, forgotten K, fingerprint, [S, ...]]
    ["conflict", 1, *C]
    ["apply-report", 1, received, applied, skipped_known, conflicts, deferred, [C, ...],
                        excluded K, knowledge K, last, final, made_with K]
    ["session-end", 1, session, merge K, excluded K, [C, ...]]
    ["policy", 1, name]                       a Policy's value, e.g. "source-wins"
    ["changes-request", 1, known K, after, upto, max_rows, max_bytes]
    ["error", 1, code, message]               see peersync._engine.errors
    ["statuses", 1, [T, ...]]                 the result of Database.status
    ["conflicts", 1, [C, ...]]                the result of Database.conflicts

    T = [scope, replica_id, tick, knowledge K, forgotten K, fingerprint, [table, ...],
         tracked_rows, tombstones, conflicts, pending]

    K = Knowledge.to_wire()
    S = [name, [column, ...], [key column, ...], [type, ...], [D, ...]]
    D = [column, value type, nullable, length, precision, scale, declared]
    C = [scope, table, [key value, ...], type, local_row R, remote_row R, local_version V,
         remote_version V, local_time, remote_time, policy, outcome, detail, id, logged_at]
    R = nil | [[column, ...], [value, ...]]   V = nil | [replica_id, tick]

Enums travel by value (``"update/update"``, ``"source-wins"``); replica ids
are 16-byte bin; ticks are integers in 0..2**63-1 (a version's tick from 1),
times and column values 64-bit signed integers, row limits 1..2**63-1.
Optional fields are nil when absent. A table's column descriptors ``D``
(:class:`~peersync._engine.types.Column`) are either empty (a table known by
name only) or name its columns in order; the value type is one of
:class:`~peersync._engine.types.ValueType`'s values and the sizes are nil or
integers in 0..2**31-1. The scope of each call is the
transport's business (e.g. the URL path), not a field here.

Decoding is strict: any truncated input, trailing byte, input longer than
``max_size``, wrong type (a bool is not an int, a map is never expected),
missing or extra field, out-of-range integer, replica id that is not 16
bytes, unknown enum value, unknown kind or version raises
:class:`~peersync.ProtocolError` with a one-line reason, and nothing else
escapes. Encoding checks the same rules, so what one side encodes the other
decodes; it raises :class:`~peersync.ProtocolError` for a value that cannot
travel, and :class:`~peersync.ConfigurationError` for a conflict callback.

Field readers are in ``fields.py``, the structures (``S``, ``C``, ``T``, ...)
in ``structs.py``, the messages in ``messages.py``.

A pass of :meth:`Peer.batches` travels as a stream (``stream.py``,
:func:`encode_batch_stream`):
``["batch-stream", 1]``, one bin per batch, then nil, so a stream cut short
is told apart from one that ended.
"""

from .fields import DEFAULT_MAX_SIZE, FORMAT, MAX_TICK
from .messages import (
    APPLY_REPORT,
    CHANGES_REQUEST,
    CONFLICT,
    CONFLICTS,
    ERROR,
    KNOWLEDGE,
    POLICY,
    REPLICA_INFO,
    SCHEMAS,
    SESSION_END,
    STATUSES,
    TABLE_SCHEMA,
    ChangesRequest,
    Message,
    encode_policy,
)  # fmt: skip
from .stream import decode_batch_stream, encode_batch_stream

__all__ = [
    "APPLY_REPORT", "CHANGES_REQUEST", "CONFLICT", "CONFLICTS", "DEFAULT_MAX_SIZE", "ERROR", "FORMAT", "KNOWLEDGE",
    "MAX_TICK", "POLICY", "REPLICA_INFO", "SCHEMAS", "SESSION_END", "STATUSES", "TABLE_SCHEMA", "ChangesRequest",
    "Message", "decode_batch_stream", "encode_batch_stream", "encode_policy",
]  # fmt: skip
