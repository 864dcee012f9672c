"""Callbacks to the organisation's app: its webhook endpoints, the events written in the
transaction of the change they report, and their signed delivery (Standard Webhooks)."""
