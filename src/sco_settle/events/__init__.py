"""The event stream banks consume: the audit chain read as a transactional outbox and
published to NATS JetStream, one subject per participant and currency
(docs/audit-and-events.md).

``messages`` (entries to messages) and ``access`` (the nats-server users and permissions) are
pure; ``outbox`` reads the database, ``publisher`` talks to NATS, ``background`` runs both (and
the audit checkpoints) inside the server.
"""
