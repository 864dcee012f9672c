"""Figures read from the database for operators: channel health and the queue gauges.

May import `db` and the shared top-level modules.
"""
