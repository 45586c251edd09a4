"""The engine: knowledge, the rules of triage and conflict, the batch format,
the session loop and the Peer protocol. Pure Python over plain data: it
imports no database driver and no network library (a test holds this), and
never imports an adapter or a transport; they import it."""
