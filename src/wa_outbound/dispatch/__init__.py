"""Dispatch: draining the outbox into WhatsApp.

Owns the claim under a lease (the hot SQL of sending), asking the rate limiter about a claimed
batch, the send loop, the policy that turns a send result into the next state, and writing
outcomes back, pausing a sender that Meta's answer shows unable to send. May import `receipts`
(pending statuses applied with an acceptance), `senders`, `whatsapp`, `ratelimit` (only the types
of a sender group's question and verdicts), `db` and the shared top-level modules; nothing
imports it but the composition root.
"""
