"""Handing a message to the configured SMTP server (aiosmtplib).

Sending is optional and off by default: with no ``PARLEY_SMTP_HOST`` there is no
``SmtpConfig`` and nothing is ever sent.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from email.message import EmailMessage

import aiosmtplib

from server.config import Settings
from server.core.errors import DomainError, ErrorCode

log = logging.getLogger("parley.mail")
TIMEOUT_SECONDS = 15.0


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int
    sender: str
    security: str  # "starttls", "tls" or "none"
    username: str | None = None
    password: str | None = field(default=None, repr=False)


def smtp_config(settings: Settings) -> SmtpConfig | None:
    """The SMTP settings, or None when sending is off."""
    if not settings.smtp_host:
        return None
    return SmtpConfig(
        host=settings.smtp_host,
        port=settings.smtp_port,
        sender=settings.smtp_from,
        security=settings.smtp_security,
        username=settings.smtp_username,
        password=settings.smtp_password,
    )


async def deliver(config: SmtpConfig, message: EmailMessage) -> None:
    """Send one message; a refusal or an unreachable server is one generic error
    for the client (the details go to the server log)."""
    try:
        await aiosmtplib.send(
            message,
            hostname=config.host,
            port=config.port,
            username=config.username,
            password=config.password,
            use_tls=config.security == "tls",
            # "starttls" insists on it (no silent downgrade); "none" never upgrades.
            start_tls=True if config.security == "starttls" else False,
            timeout=TIMEOUT_SECONDS,
        )
    except (aiosmtplib.SMTPException, OSError):
        log.exception("sending mail through %s:%s failed", config.host, config.port)
        raise DomainError(
            ErrorCode.INTERNAL, "The e-mail could not be sent; nothing was delivered."
        ) from None
