"""The dead-letter queue: the report (what failed, why, what to do) and replay or discard.

May import `db` and the shared top-level modules.
"""
