"""Persistence: the engine and request connections, the queries (repositories/) and writes
(commands/), audit appends, the status-event stream and fan-out, attachment storage."""
