"""What the service records and reports of what happened: the message timeline and the audit
trail (`timeline`), the message object they report (`message_view`), and the events for the
organisations' webhook endpoints (`outgoing`), all written in the transaction of the change."""

from wa_outbound.events.timeline import message_event_row, record_audit, record_message_events

__all__ = ["message_event_row", "record_audit", "record_message_events"]
