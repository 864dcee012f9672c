"""Receipts: Meta's delivery statuses applied to the outbox.

Owns the rank rule (a status never moves a message backwards), matching a status to its message
by wamid and business number, and the statuses kept pending until their wamid is known. Shared
by the webhook intake, the dispatcher (pending statuses applied with an acceptance) and the
sandbox's simulated statuses, so it may import only `db` and the shared top-level modules.
"""
