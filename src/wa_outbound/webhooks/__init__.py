"""Meta's webhooks, received: parsing bodies, storing and processing them, applying statuses.

Owns the tolerant payload reader, the intake (store, process, retry from the store), the rank rule
that applies delivery statuses and keeps early ones pending, the sweep behind them, and the
24-hour service windows that inbound messages open. May import `db` and the shared top-level
modules; never `dispatch` or `whatsapp`.
"""
