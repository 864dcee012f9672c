"""Message templates: each WABA's registry as Meta lists it (`registry`), read from Meta when a
WABA is added, periodically and on demand (`meta`, `sync`), kept current by Meta's template
webhooks, and the gate that refuses what Meta would refuse before it is queued (`gate`).

May import `contacts`, `senders`, `crypto`, `events`, `db` and the shared top-level modules.
"""
