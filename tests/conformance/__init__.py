"""The conformance suite: every promise of SEMANTICS.md that a peer must keep,
written once and run against every registered peer kind, alone and in mixed
pairs (memory <-> SQLite both ways today).

How it is parametrized: each test takes the ``net`` fixture (``conftest.py``),
which runs it once per combination in ``kinds.COMBOS``: ``sqlite``,
``memory``, ``sqlite+memory`` and ``memory+sqlite`` (the peers a test creates
take their kinds from the combination in turn, so a ring of three in
``memory+sqlite`` is memory, SQLite, memory).

Adding a database: write a ``Kind`` in ``kinds.py`` (create a provisioned peer,
write to it as a foreign writer, read its rows and knowledge) and add it to
``KINDS``. Every test, and every mixed pair with the kinds already there, then
runs against it; nothing else is edited.

Server databases (MariaDB, PostgreSQL) come from a pool made once per test
session (``pool.py``, ``servers.py``): a database used by a test is reset by
DML to exactly the freshly provisioned state, with a new replica id, before
the next test gets it (``test_pool.py`` holds the reset to that).

Files, one promise each: convergence and foreign writers
(``test_convergence.py``), no redundancy in loops (``test_loops.py``), no
lost update and conflicts of every type under each policy
(``test_conflicts.py``), no resurrection (``test_deletes.py``), resumable
sessions (``test_sessions.py``), bad batches (``test_bad_batches.py``).
"""
