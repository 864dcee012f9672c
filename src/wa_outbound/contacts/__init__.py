"""What the service knows of each recipient of an organisation: consent (opt-in and opt-out).

May import `db` and the shared top-level modules.
"""
