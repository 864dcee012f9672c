"""How a notice reads: plain text, HTML with the severity colour, and a Slack message."""

from __future__ import annotations

from html import escape
from typing import Any

from wa_outbound.alerts.model import TITLES, Notice

COLOURS: dict[str, str] = {
    "CRITICAL": "#d93025",
    "WARNING": "#f29900",
    "RESOLVED": "#188038",
}


def colour(notice: Notice) -> str:
    return COLOURS[notice.label]


def fields(notice: Notice) -> list[tuple[str, str]]:
    """The figures as (name, value) pairs, the DLQ report flattened into a few lines."""
    pairs = [(name, str(value)) for name, value in notice.figures.items()]
    report = notice.report
    if report:
        channels = ", ".join(f"{k}: {v}" for k, v in report["by_channel"].items())
        pairs.append(("by_channel", channels))
        codes = ", ".join(f"{item['code']}: {item['count']}" for item in report["top_error_codes"])
        pairs.append((f"top_error_codes_{report['window_hours']}h", codes or "none"))
    return pairs


def recommendations(notice: Notice) -> list[str]:
    return list(notice.report["recommendations"]) if notice.report else []


def _lines(notice: Notice) -> list[str]:
    return [
        f"{notice.label}: {TITLES.get(notice.type, notice.type)} ({notice.subject})",
        notice.summary,
        "",
        f"first fired: {notice.first_fired_at.isoformat()}",
        f"at: {notice.at.isoformat()}",
        f"alert id: {notice.alert_id}",
    ]


def text(notice: Notice) -> str:
    lines = _lines(notice)
    pairs = fields(notice)
    if pairs:
        lines += ["", *(f"{name}: {value}" for name, value in pairs)]
    advice = recommendations(notice)
    if advice:
        lines += ["", "Recommendations:", *(f"- {line}" for line in advice)]
    return "\n".join(lines) + "\n"


def html(notice: Notice) -> str:
    rows = "".join(
        f"<tr><th align='left'>{escape(name)}</th><td>{escape(value)}</td></tr>"
        for name, value in fields(notice)
    )
    advice = "".join(f"<li>{escape(line)}</li>" for line in recommendations(notice))
    title = escape(f"{notice.label}: {TITLES.get(notice.type, notice.type)} ({notice.subject})")
    return (
        "<html><body style='font-family: sans-serif'>"
        f"<div style='border-left: 6px solid {colour(notice)}; padding: 8px 12px'>"
        f"<h2 style='color: {colour(notice)}; margin: 0'>{title}</h2>"
        f"<p>{escape(notice.summary)}</p>"
        f"<p>First fired {escape(notice.first_fired_at.isoformat())}; "
        f"alert id {escape(str(notice.alert_id))}.</p>"
        + (f"<table>{rows}</table>" if rows else "")
        + (f"<h3>Recommendations</h3><ul>{advice}</ul>" if advice else "")
        + "</div></body></html>"
    )


def slack(notice: Notice) -> dict[str, Any]:
    """An incoming-webhook body: one attachment coloured by severity, a field per figure."""
    slack_fields = [
        {"title": name, "value": value, "short": True} for name, value in fields(notice)
    ]
    advice = recommendations(notice)
    if advice:
        slack_fields.append(
            {"title": "recommendations", "value": "\n".join(advice), "short": False}
        )
    return {
        "text": notice.heading,
        "attachments": [
            {
                "color": colour(notice),
                "title": f"{notice.label}: {TITLES.get(notice.type, notice.type)} "
                f"({notice.subject})",
                "text": notice.summary,
                "fields": slack_fields,
                "footer": f"wa-outbound · alert {notice.alert_id}",
                "ts": int(notice.at.timestamp()),
            }
        ],
    }
