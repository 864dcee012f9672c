"""The data lifecycle: what is deleted when, and what is erased on request.

`retention` deletes finished messages (with their events, wamids and callback deliveries),
callback events and processed webhook bodies older than `WA_RETENTION_DAYS`, in short batches;
`worker` runs it on one replica at a time. `erasure` is `DELETE /v1/contacts/{phone}`: an
organisation's consent for a number deleted, its waiting messages cancelled, and every place
that keeps the number or what was sent to or received from it redacted (`redaction`: the
`redacted:` + HMAC tokens; `bodies`: Meta's stored webhook bodies; `keys`: the HMAC's key).

Imports the domain packages it erases in (`outbox`, `events`) and `db`; nothing imports it but
the API and the composition root.
"""
