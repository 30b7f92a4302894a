"""A minimal SMTP server for tests: it accepts every message and keeps it.

Enough of RFC 5321 for aiosmtplib (EHLO/HELO, MAIL, RCPT, DATA with dot-unstuffing,
RSET, NOOP, QUIT); it offers no STARTTLS and no AUTH, so clients use plain SMTP.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage


@dataclass
class Received:
    mail_from: str
    rcpt_to: list[str]
    data: bytes

    @property
    def message(self) -> EmailMessage:
        parsed = message_from_bytes(self.data, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


@dataclass
class SmtpSink:
    host: str = "127.0.0.1"
    port: int = 0
    received: list[Received] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    _server: asyncio.base_events.Server | None = None

    async def start(self) -> SmtpSink:
        self._server = await asyncio.start_server(self._session, self.host, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        def reply(line: str) -> None:
            writer.write(line.encode() + b"\r\n")

        mail_from, rcpt_to = "", []
        reply("220 sink ESMTP ready")
        try:
            while line := await reader.readline():
                command = line.decode("utf-8", "replace").rstrip("\r\n")
                verb = command[:4].upper()
                if verb == "EHLO":
                    reply("250-sink")
                    reply("250-8BITMIME")
                    reply("250 SMTPUTF8")
                elif verb == "HELO":
                    reply("250 sink")
                elif command.upper().startswith("MAIL FROM:"):
                    mail_from, rcpt_to = _address(command[10:]), []
                    reply("250 OK")
                elif command.upper().startswith("RCPT TO:"):
                    rcpt_to.append(_address(command[8:]))
                    reply("250 OK")
                elif verb == "DATA":
                    reply("354 End data with <CR><LF>.<CR><LF>")
                    await writer.drain()
                    lines = []
                    while (chunk := await reader.readline()) not in (b".\r\n", b""):
                        lines.append(chunk[1:] if chunk.startswith(b"..") else chunk)
                    self.received.append(Received(mail_from, rcpt_to, b"".join(lines)))
                    self.arrived.set()
                    reply("250 OK: queued")
                elif verb in {"RSET", "NOOP"}:
                    if verb == "RSET":
                        mail_from, rcpt_to = "", []
                    reply("250 OK")
                elif verb == "QUIT":
                    reply("221 Bye")
                    await writer.drain()
                    break
                else:
                    reply("502 Command not implemented")
                await writer.drain()
        finally:
            writer.close()


def _address(arg: str) -> str:
    arg = arg.strip().split(" ", 1)[0]
    return arg.removeprefix("<").removesuffix(">")
