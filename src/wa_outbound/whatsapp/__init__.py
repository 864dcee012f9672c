"""WhatsApp providers: Meta's Cloud API client, the sandbox, and how a send failure is classified.

`cloud` talks to Meta over aiohttp and imports no database code; `retry` classifies Meta's error
codes once, for everyone. The sandbox simulates Meta, statuses included (it may import
`webhooks`). May import `config` and the shared top-level modules.
"""
