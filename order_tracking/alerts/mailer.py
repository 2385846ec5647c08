"""Send an :class:`~order_tracking.alerts.content.Alert` over SMTP, bounded in time.

``smtplib`` applies its ``timeout`` to the connect and to every later read and write, so a
server that accepts the connection and never answers costs at most ``smtp_timeout_secs`` per
step instead of hanging the run. Failures come back as one line (:class:`MailError`); the
caller reports them and never lets them undo a write.
"""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

from order_tracking.alerts.content import Alert
from order_tracking.settings import AlertSettings


class MailError(Exception):
    """The alert could not be delivered; the message says why in one line (never a password)."""


def to_message(alert: Alert, sender: str, recipients: list[str] | tuple[str, ...]) -> EmailMessage:
    """multipart/alternative: the plain text first, the HTML second (mail clients prefer the last)."""
    msg = EmailMessage()
    msg["Subject"] = alert.subject
    msg["From"] = sender
    msg["To"] = ", ".join(recipients)
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = make_msgid(domain="order-tracking.local")
    msg.set_content(alert.text)
    msg.add_alternative(alert.html, subtype="html")
    return msg


def send(alert: Alert, settings: AlertSettings) -> None:
    """Deliver ``alert`` to ``settings.recipients``; raise :class:`MailError` on any failure."""
    if not settings.smtp_host:
        raise MailError("ORDER_TRACKING_SMTP_HOST is not set")
    where = f"SMTP {settings.smtp_host}:{settings.smtp_port}"
    timeout = settings.smtp_timeout_secs
    try:
        client: Any
        if settings.smtp_ssl:
            client = smtplib.SMTP_SSL(
                settings.smtp_host, settings.smtp_port, timeout=timeout, context=ssl.create_default_context()
            )
        else:
            client = smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=timeout)
        with client:
            if settings.smtp_starttls and not settings.smtp_ssl:
                client.starttls(context=ssl.create_default_context())
            if settings.smtp_user:
                client.login(settings.smtp_user, settings.smtp_password or "")
            client.send_message(to_message(alert, settings.sender, settings.recipients))
    except TimeoutError:
        raise MailError(_timed_out(where, timeout)) from None
    except smtplib.SMTPException as exc:
        if isinstance(exc.__context__, TimeoutError):  # smtplib re-raises a read timeout as "disconnected"
            raise MailError(_timed_out(where, timeout)) from None
        reason = (str(exc).splitlines() or [""])[0][:200]
        raise MailError(f"{where}: {type(exc).__name__}: {reason}") from None
    except OSError as exc:
        raise MailError(f"{where}: {exc.strerror or exc}") from None


def _timed_out(where: str, timeout: float) -> str:
    return f"{where} did not answer within {timeout:g} s (ORDER_TRACKING_SMTP_TIMEOUT_SECS)"
