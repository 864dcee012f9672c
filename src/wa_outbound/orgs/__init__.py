"""Organisations and their API keys: creation, hashing, revocation, and the key cache.

May import `db` and the shared top-level modules.
"""
