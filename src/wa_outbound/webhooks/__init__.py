"""Meta's webhooks, received: parsing bodies, storing and processing them, routing each change.

Owns the tolerant payload reader, the intake (store, process, retry from the store), the routing
of each change to the business number or WABA it names, the management changes (account
restrictions, messaging limits, throughput upgrades), the 24-hour service windows that inbound
messages open, and the sweep behind them. Statuses are applied by `receipts`. May import
`receipts`, `senders`, `db` and the shared top-level modules; never `dispatch` or `whatsapp`.
"""
