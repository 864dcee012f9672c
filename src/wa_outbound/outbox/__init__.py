"""The outbox: queueing messages and reading them back.

Owns enqueueing (one, bulk, the single-statement fast path, idempotency by key), waking the
dispatchers after an enqueue, and the public read model of a message (get, list, cancel,
timeline). May import `contacts`, `db` and the shared top-level modules.
"""
