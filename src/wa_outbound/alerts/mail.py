"""Alert email over SMTP (aiosmtplib): an HTML part in the severity colour and a text part."""

from __future__ import annotations

from email.message import EmailMessage

import aiosmtplib

from wa_outbound.alerts import render
from wa_outbound.alerts.model import Notice
from wa_outbound.config import Settings

SMTP_TIMEOUT_S = 10.0


class EmailNotifier:
    """Sends each notice to `WA_ALERT_EMAIL_RECIPIENTS`; STARTTLS and login per settings."""

    name = "email"

    def __init__(self, settings: Settings, *, timeout_s: float = SMTP_TIMEOUT_S) -> None:
        self._settings = settings
        self._timeout_s = timeout_s

    def message(self, notice: Notice) -> EmailMessage:
        s = self._settings
        message = EmailMessage()
        message["Subject"] = notice.heading
        message["From"] = s.alert_email_from
        message["To"] = ", ".join(s.alert_email_recipients)
        message.set_content(render.text(notice))
        message.add_alternative(render.html(notice), subtype="html")
        return message

    async def send(self, notice: Notice) -> None:
        s = self._settings
        await aiosmtplib.send(
            self.message(notice),
            hostname=s.smtp_host,
            port=s.smtp_port,
            username=s.smtp_username or None,
            password=s.smtp_password.get_secret_value() or None,
            start_tls=s.smtp_starttls,
            timeout=self._timeout_s,
        )
