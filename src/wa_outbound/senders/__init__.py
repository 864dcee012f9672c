"""Senders: the WhatsApp business numbers an organisation sends from, each with its own access
token (encrypted at rest), WABA, throughput and health; and the deployment's shared sender.

May import `db`, `crypto`, `whatsapp` and the shared top-level modules.
"""
