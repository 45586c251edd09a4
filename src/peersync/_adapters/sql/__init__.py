"""What every SQL adapter shares: the statements over peersync's metadata
tables (replicas, scope knowledge, pending changes, applied blocks, partial
knowledge, the conflict log and its row codec) and the knowledge-to-ranges
rows. Each adapter gives a :class:`~peersync._adapters.sql.dialect.Dialect`
(the narrow list of what differs) and keeps its own triggers, enumeration
and set-based apply, written against the steps in docs/design.md."""
